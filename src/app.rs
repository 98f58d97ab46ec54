//! Parse → build → run: turn settings into a bound, ready-to-serve [`App`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, auth::TokenOrigin, AdminState, AdminToken, Origins};
use crate::config::{Settings, SharedSettings};
use crate::demo::DemoBackends;
use crate::health::{self, Health};
use crate::proxy::{self, Proxy};
use crate::reload::Reloader;
use crate::routing::{Backend, BackendPool};
use crate::store::{Membership, Store};
use crate::sync;
use crate::telemetry::Telemetry;

/// A built switchyard: listeners bound, pool loaded, demo backends running.
pub struct App {
    proxy: Arc<Proxy>,
    listener: TcpListener,
    admin: AdminState,
    admin_listener: TcpListener,
    token_origin: TokenOrigin,
    demo: Option<DemoBackends>,
    reloader: Reloader,
    /// Proxy worker threads.
    workers: usize,
}

impl App {
    /// Validate `settings`, start the demo backends if asked, open the store
    /// (seeding it from the configured backends if it is empty), build the
    /// pool, resolve the admin token and bind both listeners.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let (proxy_settings, mut backends) = settings.validate()?;
        let token_source = settings.admin.token_source(&settings.database)?;
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
        let pool = Arc::new(BackendPool::new(membership.snapshot()?));
        let health = Arc::new(Health::new(proxy_settings.health.clone()));
        let telemetry = Arc::new(Telemetry::new(Arc::clone(&pool), Arc::clone(&health)));
        let (token, token_origin) =
            AdminToken::load(&token_source).map_err(|e| anyhow::anyhow!("admin token: {e}"))?;
        let settings_now: SharedSettings =
            Arc::new(arc_swap::ArcSwap::from_pointee(proxy_settings));
        let listener = bind(settings.listen, "proxy").await?;
        let admin_listener = bind(settings.admin.listen, "admin").await?;
        let admin = AdminState {
            store,
            pool: Arc::clone(&pool),
            telemetry: Arc::clone(&telemetry),
            health: Arc::clone(&health),
            settings: Arc::clone(&settings_now),
            token,
            origins: Arc::new(Origins::of(admin_listener.local_addr()?)),
            db: Arc::default(),
        };
        let proxy = Arc::new(Proxy::new(pool, settings_now, telemetry, health));
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(App {
            workers,
            reloader: Reloader::new(Arc::clone(&proxy), settings.clone()),
            proxy,
            listener,
            admin,
            admin_listener,
            token_origin,
            demo,
        })
    }

    /// The proxy's bound address (useful with port 0).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        self.admin.token.expose()
    }

    /// Applies a re-read config to this switchyard while it runs.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The live backend pool.
    pub fn pool(&self) -> Arc<BackendPool> {
        Arc::clone(&self.proxy.pool)
    }

    /// Serve until `shutdown` fires; returns after the graceful stop.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let snapshot = self.proxy.pool.load();
        for backend in snapshot.backends() {
            tracing::info!(id = %backend.id, address = %backend.address, weight = backend.weight,
                state = backend.state.as_str(), "backend");
        }
        self.announce_admin();
        tracing::info!(listen = %self.proxy_addr(), admin = %self.admin_addr(),
            backends = snapshot.backends().len(), workers = self.workers, "switchyard ready");
        let grace = self.proxy.settings.load().shutdown_grace;
        let store = self.admin.store.clone();
        let follower = sync::spawn_follower(
            store.clone(),
            self.admin.publisher(),
            Arc::clone(&self.admin.db),
            shutdown.clone(),
        );
        let admin = tokio::spawn(admin::serve(
            self.admin_listener,
            admin::router(self.admin),
            shutdown.clone(),
            grace,
        ));
        let checker = health::checker::spawn(
            Arc::clone(&self.proxy.health),
            Arc::clone(&self.proxy.pool),
            shutdown.clone(),
        );
        let drainer = proxy::drain::spawn_watcher(
            Arc::clone(&self.proxy.drains),
            Arc::clone(&self.proxy.pool),
            Arc::clone(&self.proxy.settings),
            shutdown.clone(),
        );
        let served =
            proxy::workers::serve_on_workers(self.listener, &self.proxy, self.workers, shutdown)
                .await;
        checker.abort();
        drainer.abort();
        if let Some(follower) = follower {
            follower.abort();
        }
        let admin_served = admin.await?;
        store.close().await;
        drop(self.demo);
        served?;
        admin_served?;
        Ok(())
    }

    /// Where the UI is; the token only when it was generated just now.
    fn announce_admin(&self) {
        let url = format!("http://{}/", self.admin_addr());
        match self.token_origin {
            TokenOrigin::Generated => tracing::info!(
                url = %format!("{url}#token={}", self.admin_token()),
                "admin UI; a new admin token was generated and saved next to the database \
                 (this is the only time it is printed)"
            ),
            TokenOrigin::Reused => {
                tracing::info!(%url, "admin UI; the admin token is in the token file next to the database")
            }
            TokenOrigin::Explicit => {
                tracing::info!(%url, "admin UI; sign in with the configured admin token")
            }
        }
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
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
