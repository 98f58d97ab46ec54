//! Parse → build → run: turn settings into a bound, ready-to-serve [`App`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, auth::TokenOrigin, AdminState, AdminToken, AllowedHosts, Origins};
use crate::config::{ConfigError, Settings, SharedSettings};
use crate::demo::DemoBackends;
use crate::health::{self, Health};
use crate::proxy::{self, Proxy};
use crate::reload::Reloader;
use crate::routing::{Backend, BackendPool};
use crate::store::{Membership, Store};
use crate::sync;
use crate::telemetry::{self, Telemetry};
use crate::tls::{Keeper, Sessions};

/// A built switchyard: listeners bound, pool loaded, demo backends running.
pub struct App {
    proxy: Arc<Proxy>,
    listener: TcpListener,
    /// The HTTPS listener, unless `tls.listen = false`.
    tls_listener: Option<TcpListener>,
    admin: AdminState,
    admin_listener: TcpListener,
    /// `--metrics-listen`: `/metrics` without a token.
    metrics_listener: Option<TcpListener>,
    token_origin: TokenOrigin,
    demo: Option<DemoBackends>,
    reloader: Reloader,
    /// Proxy worker threads.
    workers: usize,
}

impl App {
    /// Check `settings`, bind the listeners, resolve the admin tokens,
    /// start the demo backends if asked, then open the store (seeding it
    /// from the configured backends if it is empty, or replacing it with
    /// them if asked) and build the pool. Everything that can fail for a
    /// reason of this node alone (a port taken, a token file) fails before
    /// the shared store is changed.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let checked = settings.check()?;
        crate::listen::raise_open_file_limit(settings.limits.max_connections);
        let listener = bind(settings.listen, "proxy").await?;
        let tls_listener = match settings.tls.listen.addr() {
            Some(addr) => Some(bind(addr, "tls.listen").await?),
            None => None,
        };
        let admin_listener = bind(settings.admin.listen, "admin").await?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(bind(addr, "metrics").await?),
            None => None,
        };
        let (token, token_origin) =
            AdminToken::load(&checked.token).map_err(|e| anyhow::anyhow!("admin token: {e}"))?;
        let read_token = checked.read_token.map(|t| AdminToken::new(t.expose()));
        if read_token
            .as_ref()
            .is_some_and(|r| r.matches(token.expose().as_bytes()))
        {
            return Err(ConfigError::Invalid(
                "admin.read_token is the same as the admin token; a read-only token must differ"
                    .into(),
            )
            .into());
        }
        let demo = if settings.demo {
            Some(DemoBackends::start().await?)
        } else {
            None
        };
        let database = &checked.database;
        let mut store = Store::open(database.expose())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open database {database}: {e}"))?;
        if let Some(sealer) = checked.sealer {
            store = store.with_sealer(sealer);
        }
        let membership = match (&demo, checked.backends.is_empty()) {
            // The demo backends are not configured ones: they only seed.
            (Some(demo), true) => reconcile(&store, &demo.backends(), Seed::OnlyEmpty).await?,
            _ if settings.replace_backends => {
                reconcile(&store, &checked.backends, Seed::Replace).await?
            }
            _ => reconcile(&store, &checked.backends, Seed::WarnIfDifferent).await?,
        };
        let pool = Arc::new(BackendPool::new(membership.snapshot()?));
        let health = Arc::new(Health::new(checked.proxy.health.clone()));
        health.track(&pool.load());
        let telemetry = Arc::new(Telemetry::new(Arc::clone(&pool), Arc::clone(&health)));
        let sessions = Sessions::new().map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?;
        let certificates = Arc::new(Keeper::new(
            sessions,
            checked.proxy.tls.default_certificate.clone(),
        ));
        certificates.apply(store.certificates().await?);
        telemetry.tls.watch(Arc::clone(&certificates));
        let acme = checked
            .acme
            .map(|config| crate::acme::Acme::new(config, store.clone(), Arc::clone(&certificates)));
        if let Some(acme) = &acme {
            acme.resync().await?;
            telemetry.tls.watch_acme(Arc::clone(acme));
        } else {
            let managed = store.domain_count().await?;
            if managed > 0 {
                tracing::warn!(managed, "managed domains are stored but ACME is off (no acme.directory): their certificates will not be renewed");
            }
        }
        let settings_now: SharedSettings = Arc::new(arc_swap::ArcSwap::from_pointee(checked.proxy));
        let origins = Origins::of(admin_listener.local_addr()?).with(checked.allowed_origins);
        let admin = AdminState {
            store,
            pool: Arc::clone(&pool),
            telemetry: Arc::clone(&telemetry),
            health: Arc::clone(&health),
            settings: Arc::clone(&settings_now),
            token,
            read_token,
            origins: Arc::new(origins),
            hosts: Arc::new(AllowedHosts::new(checked.allowed_hosts)),
            db: Arc::default(),
            certificates: Arc::clone(&certificates),
            acme: acme.clone(),
        };
        let https_port = match &tls_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let proxy = Arc::new(
            Proxy::new(
                pool,
                settings_now,
                (telemetry, health),
                certificates,
                https_port,
            )
            .with_acme(acme.as_ref()),
        );
        Ok(App {
            workers: checked.workers,
            reloader: Reloader::new(Arc::clone(&proxy), settings.clone()),
            proxy,
            listener,
            tls_listener,
            admin,
            admin_listener,
            metrics_listener,
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

    /// The HTTPS listener's bound address, unless it is off.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listener
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The `--metrics-listen` address, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener has an address"))
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
        let metrics = self
            .metrics_addr()
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let tls = self
            .tls_addr()
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        tracing::info!(listen = %self.proxy_addr(), tls_listen = %tls, admin = %self.admin_addr(),
            %metrics, backends = snapshot.backends().len(),
            certificates = self.proxy.certificates.entries().len(), workers = self.workers,
            "switchyard ready");
        let (grace, header_read) = {
            let settings = self.proxy.settings.load();
            (settings.shutdown_grace, settings.header_read_timeout)
        };
        let store = self.admin.store.clone();
        let acme = self
            .admin
            .acme
            .as_ref()
            .map(|acme| acme.spawn(shutdown.clone()));
        let follower = sync::spawn_follower(
            store.clone(),
            self.admin.publisher(),
            Arc::clone(&self.admin.db),
            shutdown.clone(),
        );
        let metrics = self.metrics_listener.map(|listener| {
            tokio::spawn(admin::serve(
                listener,
                admin::metrics_router(
                    Arc::clone(&self.admin.telemetry),
                    Arc::clone(&self.admin.hosts),
                ),
                shutdown.clone(),
                (grace, header_read),
            ))
        });
        let admin = tokio::spawn(admin::serve(
            self.admin_listener,
            admin::router(self.admin),
            shutdown.clone(),
            (grace, header_read),
        ));
        let refresher = crate::tls::keeper::spawn_refresher(
            Arc::clone(&self.proxy.certificates),
            std::time::Duration::from_secs(30),
            shutdown.clone(),
        );
        let checker = health::checker::spawn(
            Arc::clone(&self.proxy.health),
            Arc::clone(&self.proxy.pool),
            shutdown.clone(),
        );
        let sampler =
            telemetry::history::spawn(Arc::clone(&self.proxy.telemetry), shutdown.clone());
        let drainer = proxy::drain::spawn_watcher(
            Arc::clone(&self.proxy.drains),
            Arc::clone(&self.proxy.pool),
            Arc::clone(&self.proxy.settings),
            shutdown.clone(),
        );
        let mut listeners = vec![(self.listener, proxy::Scheme::Http)];
        listeners.extend(self.tls_listener.map(|l| (l, proxy::Scheme::Https)));
        let served =
            proxy::workers::serve_on_workers(listeners, &self.proxy, self.workers, shutdown).await;
        checker.abort();
        refresher.abort();
        sampler.abort();
        if let Some(acme) = acme {
            acme.abort();
        }
        drainer.abort();
        if let Some(follower) = follower {
            follower.abort();
        }
        let admin_served = admin.await?;
        if let Some(metrics) = metrics {
            metrics.await??;
        }
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

/// What configured backends do to a store that is not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seed {
    /// Nothing (the demo backends).
    OnlyEmpty,
    /// The store wins; a difference is a warning that says how to apply them.
    WarnIfDifferent,
    /// They replace the stored pool (`--replace-backends`).
    Replace,
}

/// The stored membership, after the configured `backends` seeded an empty
/// store (or did what `seed` says to one that is not).
async fn reconcile(store: &Store, backends: &[Backend], seed: Seed) -> anyhow::Result<Membership> {
    let membership = store.membership().await?;
    if backends.is_empty() {
        return Ok(membership);
    }
    let configured: Vec<_> = backends
        .iter()
        .map(|b| (b.address.clone(), b.weight, b.state))
        .collect();
    let stored: Vec<_> = membership
        .backends
        .iter()
        .map(|b| (b.address.clone(), b.weight, b.state))
        .collect();
    let same = configured.len() == stored.len() && configured.iter().all(|c| stored.contains(c));
    if membership.backends.is_empty() {
        tracing::info!(
            backends = configured.len(),
            "the store is empty; seeding it"
        );
        return Ok(store.replace(&configured).await?);
    }
    if seed == Seed::Replace && !same {
        tracing::info!(
            configured = %list(&configured),
            stored = %list(&stored),
            "replacing the stored pool with the configured backends (--replace-backends)"
        );
        return Ok(store.replace(&configured).await?);
    }
    if !same && seed == Seed::WarnIfDifferent {
        tracing::warn!(
            configured = %list(&configured),
            stored = %list(&stored),
            "the configured backends differ from the stored pool, which is used; to use the \
             configured ones, restart with --replace-backends, or replace the pool with \
             PUT /api/v1/backends"
        );
    }
    Ok(membership)
}

fn list(
    backends: &[(
        crate::routing::BackendAddr,
        u32,
        crate::routing::BackendState,
    )],
) -> String {
    let items: Vec<String> = backends
        .iter()
        .map(|(address, weight, state)| match (weight, state) {
            (1, crate::routing::BackendState::Active) => address.to_string(),
            _ => format!("{address} (weight {weight}, {})", state.as_str()),
        })
        .collect();
    format!("[{}]", items.join(", "))
}
