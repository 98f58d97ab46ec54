//! The `switchyard` binary: flags → settings → runtime → [`switchyard::App`]
//! (build, then run until a signal; SIGHUP goes to its [`switchyard::Reloader`]).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{ConfigError, Flags, LogFormat};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let mut settings = match flags.settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("switchyard: {err}");
            return ExitCode::from(2);
        }
    };
    settings.demo = flags.demo;
    init_tracing(settings.log_format);

    // The control plane (admin API, health checks, signals) runs here; the
    // proxy starts its own worker threads (see `switchyard::proxy::workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("switchyard: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let app = switchyard::App::build(&settings).await?;
        tokio::spawn(watch_signals(shutdown.clone(), flags, app.reloader()));
        app.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchyard: {err:#}");
            if err.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// SIGTERM/SIGINT start a graceful stop (a second one exits at once);
/// SIGHUP re-reads the config file.
async fn watch_signals(shutdown: CancellationToken, flags: Flags, reloader: switchyard::Reloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let mut round = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                reload(&flags, &reloader);
                continue;
            }
        }
        if round > 0 {
            eprintln!("switchyard: second signal, exiting now");
            std::process::exit(1);
        }
        tracing::info!("shutdown signal received");
        shutdown.cancel();
        round += 1;
    }
}

/// Re-read the config file (then the flags on top) and apply it.
fn reload(flags: &Flags, reloader: &switchyard::Reloader) {
    let Some(path) = &flags.config else {
        tracing::info!("SIGHUP: no --config file to re-read");
        return;
    };
    let applied = reloader.apply(flags.settings().map(|mut settings| {
        settings.demo = flags.demo;
        settings
    }));
    match applied {
        Ok(()) => tracing::info!(config = %path.display(), "config reloaded"),
        Err(err) => {
            tracing::error!(config = %path.display(), %err, "config reload refused; the running config stays")
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
