//! Parse → build → run: turn settings into a bound, ready-to-serve [`App`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::demo::DemoBackends;
use crate::proxy::{self, upstream::Upstreams, Proxy};
use crate::routing::{Backend, BackendPool};
use crate::store::{Membership, Store};

/// A built switchyard: listener bound, pool loaded, demo backends running.
pub struct App {
    proxy: Arc<Proxy>,
    listener: TcpListener,
    demo: Option<DemoBackends>,
    store: Store,
}

impl App {
    /// Validate `settings`, start the demo backends if asked, open the store
    /// (seeding it from the configured backends if it is empty), build the
    /// pool and bind the proxy listener.
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
        let store = Store::open(&settings.database)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", settings.database))?;
        let membership = seed_if_empty(&store, &backends).await?;
        let upstreams = Upstreams::new(
            proxy_settings.connect_timeout,
            proxy_settings.backend_idle_timeout,
        );
        let proxy = Proxy {
            pool: Arc::new(BackendPool::new(membership.snapshot()?)),
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
            store,
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
        self.store.close().await;
        drop(self.demo);
        Ok(())
    }
}

/// Build and run switchyard with `settings` until `shutdown` fires.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(&settings).await?.run(shutdown).await
}

/// The stored membership; configured backends only seed an empty store.
async fn seed_if_empty(store: &Store, backends: &[Backend]) -> anyhow::Result<Membership> {
    let membership = store.membership().await?;
    if backends.is_empty() {
        return Ok(membership);
    }
    if !membership.backends.is_empty() {
        tracing::info!(
            stored = membership.backends.len(),
            "the store already has backends; configured backends only seed an empty store"
        );
        return Ok(membership);
    }
    let seed: Vec<_> = backends
        .iter()
        .map(|b| (b.address.clone(), b.weight, b.state))
        .collect();
    tracing::info!(
        backends = seed.len(),
        "seeding the empty store from the configured backends"
    );
    Ok(store.replace(&seed).await?)
}
