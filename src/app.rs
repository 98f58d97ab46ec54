//! Parse → build → run: turn settings into a bound, ready-to-serve [`App`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};
use crate::demo::DemoBackends;
use crate::proxy::{self, upstream::Upstreams, Proxy};
use crate::routing::{BackendPool, Snapshot};

/// A built switchyard: listener bound, pool loaded, demo backends running.
pub struct App {
    proxy: Arc<Proxy>,
    listener: TcpListener,
    demo: Option<DemoBackends>,
}

impl App {
    /// Validate `settings`, start the demo backends if asked, build the pool
    /// and bind the proxy listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let (proxy_settings, mut backends) = settings.validate()?;
        let demo = if settings.demo {
            Some(DemoBackends::start().await?)
        } else {
            None
        };
        if let (Some(demo), true) = (&demo, backends.is_empty()) {
            backends = demo.backends();
        }
        let snapshot = Snapshot::new(1, backends)
            .map_err(|e| ConfigError::Invalid(format!("backends: {e}")))?;
        let upstreams = Upstreams::new(
            proxy_settings.connect_timeout,
            proxy_settings.backend_idle_timeout,
        );
        let proxy = Proxy {
            pool: Arc::new(BackendPool::new(snapshot)),
            settings: Arc::new(proxy_settings),
            upstreams: Arc::new(upstreams),
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        Ok(App {
            proxy: Arc::new(proxy),
            listener,
            demo,
        })
    }

    /// The proxy's bound address (useful with port 0).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The live backend pool.
    pub fn pool(&self) -> Arc<BackendPool> {
        Arc::clone(&self.proxy.pool)
    }

    /// Serve until `shutdown` fires; returns after the graceful stop.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let snapshot = self.proxy.pool.load();
        tracing::info!(listen = %self.proxy_addr(), backends = snapshot.backends().len(), "switchyard proxy ready");
        for backend in snapshot.backends() {
            tracing::info!(id = %backend.id, address = %backend.address, weight = backend.weight, "backend");
        }
        proxy::serve(self.listener, self.proxy, shutdown).await?;
        drop(self.demo);
        Ok(())
    }
}

/// Build and run switchyard with `settings` until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(&settings).await?.run(shutdown).await
}
