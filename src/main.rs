//! The `switchyard` binary: flags → settings → runtime → [`switchyard::App`]
//! (build, then run until a signal; SIGHUP goes to its [`switchyard::Reloader`]).
//! `--check` stops after the settings: it prints them and exits.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{ConfigError, Flags, LogFormat};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(err) if err.use_stderr() && json_requested() => {
            return fatal(LogFormat::Json, &err.to_string(), 2);
        }
        Err(err) => err.exit(),
    };
    let settings = flags.settings();
    // The config's log format if it loaded, else the flag's: even the
    // message that the config is broken comes in the format asked for.
    let format = match &settings {
        Ok(settings) => settings.log_format,
        Err(_) => flags.log_format.unwrap_or_default(),
    };
    init_tracing(format);
    let settings = match settings {
        Ok(settings) => settings,
        Err(err) => return fatal(format, &err.to_string(), 2),
    };
    if flags.check {
        return match settings.check() {
            Ok(checked) => {
                println!(
                    "-- switchyard --check: the configuration is valid. The settings in force"
                );
                println!("-- (defaults, then the config file, then flags; secrets redacted):");
                print!("{}", checked.effective(&settings));
                ExitCode::SUCCESS
            }
            Err(err) => fatal(format, &err.to_string(), 2),
        };
    }

    // The control plane (admin API, health checks, signals) runs here; the
    // proxy starts its own worker threads (see `switchyard::proxy::workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fatal(format, &format!("cannot start the runtime: {err}"), 1),
    };
    let result = runtime.block_on(async {
        // Installed before anything can announce readiness, so that a
        // SIGTERM sent right after "switchyard ready" is never fatal.
        let signals = Signals::install()?;
        let shutdown = CancellationToken::new();
        let app = switchyard::App::build(&settings).await?;
        tokio::spawn(signals.watch(shutdown.clone(), flags, app.reloader()));
        app.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = if err.downcast_ref::<ConfigError>().is_some() {
                2
            } else {
                1
            };
            fatal(format, &format!("{err:#}"), code)
        }
    }
}

/// Report a fatal error in the log format in force and return `code`.
fn fatal(format: LogFormat, message: &str, code: u8) -> ExitCode {
    match format {
        LogFormat::Text => eprintln!("switchyard: {message}"),
        LogFormat::Json => {
            let line = serde_json::json!({
                "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                "level": "ERROR",
                "fields": { "message": message, "exit_code": code },
                "target": "switchyard",
            });
            eprintln!("{line}");
        }
    }
    ExitCode::from(code)
}

/// Whether the command line asks for JSON logs (for clap's own errors,
/// before the flags are parsed).
fn json_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .any(|w| w[0] == "--log-format" && w[1] == "json")
        || args.iter().any(|a| a == "--log-format=json")
}

/// The signals switchyard handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// SIGTERM/SIGINT start a graceful stop (a second one exits at once);
    /// SIGHUP re-reads the config file.
    async fn watch(
        mut self,
        shutdown: CancellationToken,
        flags: Flags,
        reloader: switchyard::Reloader,
    ) {
        let mut round = 0;
        loop {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
                _ = self.hup.recv() => {
                    reload(&flags, &reloader);
                    continue;
                }
            }
            if round > 0 {
                tracing::warn!("second signal, exiting now");
                std::process::exit(1);
            }
            tracing::info!("shutdown signal received");
            shutdown.cancel();
            round += 1;
        }
    }
}

/// Re-read the config file (then the flags on top) and apply it.
fn reload(flags: &Flags, reloader: &switchyard::Reloader) {
    let Some(path) = &flags.config else {
        tracing::info!("SIGHUP: no --config file to re-read");
        return;
    };
    match reloader.apply(flags.settings()) {
        Ok(()) => tracing::info!(config = %path.display(), "config reloaded"),
        Err(err) => {
            tracing::error!(config = %path.display(), %err, "config reload refused; the running config stays")
        }
    }
}

/// The log filter when `RUST_LOG` is not set. The `h2` crate warns once per
/// HTTP/2 connection it closes for resetting streams too fast: a line per
/// attacker connection, at the attacker's rate.
const DEFAULT_LOG_FILTER: &str = "info,h2=error";

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
