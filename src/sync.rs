//! Several nodes, one membership: every committed change becomes this
//! node's routing snapshot, whichever node made it.
//!
//! - [`Publisher`]: turns a committed [`Membership`] into the live snapshot
//!   (never an older generation over a newer one). The admin API uses it
//!   for this node's own writes; [`spawn_follower`] for everyone else's.
//! - [`spawn_follower`] (PostgreSQL only): `LISTEN switchyard_membership`;
//!   a notification carries the new generation, and if it is newer than the
//!   live snapshot the node reads the whole membership and publishes it.
//!   After connecting (and after every reconnect) it reads the membership
//!   once *after* `LISTEN` is active, so a change committed while the node
//!   was disconnected is never missed. Every [`CHECK_EVERY`] it also compares
//!   generations, which is how a silently dead connection is noticed.
//! - [`DbStatus`]: whether the database is reachable, for `/readyz`. While
//!   it is not, the node keeps routing on its last snapshot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::acme::Acme;
use crate::health::Health;
use crate::routing::{BackendPool, PoolError, Snapshot};
use crate::store::{Membership, Store, StoreError, ACME_CHANNEL, CERT_CHANNEL, CHANNEL};
use crate::telemetry::Telemetry;
use crate::tls::Keeper;

/// How often the follower compares generations even without notifications.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Waits before reconnecting: 50 ms doubling up to 500 ms, each plus a
/// random share of itself (so the nodes of a cluster that lost the
/// database together do not reconnect in lockstep): at most 1 s.
fn reconnect_backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_jitter()
        .without_max_times()
        .build()
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes committed memberships to the routing snapshot.
#[derive(Clone, Debug)]
pub struct Publisher {
    pub pool: Arc<BackendPool>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Health>,
    /// The certificate snapshot (follows `certificates` like the pool follows `backends`).
    pub certificates: Arc<Keeper>,
    /// Managed domains and challenge answers, if ACME is on.
    pub acme: Option<Arc<Acme>>,
}

impl Publisher {
    /// Make `membership` the routing snapshot unless a newer generation is
    /// already live (concurrent writers and notifications may finish in any
    /// order). Returns whether it was published.
    pub async fn publish(&self, membership: Membership) -> Result<bool, PublishError> {
        let previous = self.pool.load();
        if membership.generation <= previous.generation() {
            return Ok(false);
        }
        // Building the table is CPU work (milliseconds at 10,000 backends).
        let snapshot = tokio::task::spawn_blocking(move || membership.snapshot_after(&previous))
            .await
            .map_err(|_| PublishError::Aborted)??;
        let snapshot: Arc<Snapshot> = Arc::new(snapshot);
        let published = self.pool.publish_if_newer(Arc::clone(&snapshot));
        if published {
            self.telemetry.retain(&snapshot);
            self.health.track(&snapshot);
        }
        Ok(published)
    }

    /// Read the whole membership and publish it if it is newer.
    async fn resync(&self, store: &Store) -> Result<(), SyncError> {
        let membership = store.membership().await?;
        let generation = membership.generation;
        if self.publish(membership).await? {
            tracing::info!(generation, "membership changed on another node; applied");
        }
        Ok(())
    }

    /// Read every certificate and serve them if they are newer.
    async fn resync_certificates(&self, store: &Store) -> Result<(), SyncError> {
        let stored = store.certificates().await?;
        let generation = stored.generation;
        let keeper = Arc::clone(&self.certificates);
        // Reading new certificates is CPU work (parsing, key checks).
        let applied = tokio::task::spawn_blocking(move || keeper.apply(stored))
            .await
            .map_err(|_| PublishError::Aborted)?;
        if applied {
            tracing::info!(generation, "certificates changed on another node; applied");
        }
        Ok(())
    }
}

/// Why a committed membership could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the committed membership cannot be routed: {0}")]
    Pool(#[from] PoolError),
    #[error("building the routing table was aborted")]
    Aborted,
}

/// Why the follower lost track of the database.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("listener: {0}")]
    Listener(#[from] sqlx::Error),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("connecting timed out")]
    Timeout,
    #[error("the notification connection was lost")]
    Lost,
}

/// Whether the membership database is reachable, as last seen.
#[derive(Debug, Default)]
pub struct DbStatus {
    /// `None` while reachable; else since when and why not.
    down: Mutex<Option<(SystemTime, String)>>,
}

impl DbStatus {
    fn reachable(&self) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((since, _)) = down.take() {
            let after = since.elapsed().unwrap_or_default();
            tracing::info!(?after, "membership database reachable again; resynced");
        }
    }

    fn unreachable(&self, why: String) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(%why, "membership database unreachable; routing on the last snapshot");
            *down = Some((SystemTime::now(), why));
        }
    }

    /// `None` if reachable, else since when and why not.
    pub fn problem(&self) -> Option<(SystemTime, String)> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Follow changes made by other nodes (PostgreSQL only; `None` for SQLite).
pub fn spawn_follower(
    store: Store,
    publisher: Publisher,
    status: Arc<DbStatus>,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let url = store.postgres_url()?.to_owned();
    Some(tokio::spawn(async move {
        let mut backoff = reconnect_backoff();
        loop {
            let err = tokio::select! {
                err = follow(&url, &store, &publisher, &status, &mut backoff) => err,
                () = shutdown.cancelled() => return,
            };
            status.unreachable(err.to_string());
            let wait = backoff.next().unwrap_or(Duration::from_secs(1));
            tracing::debug!(%err, ?wait, "membership follower reconnecting");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }))
}

/// Connect, listen, resync, then apply notifications until something
/// fails (the error is returned; `backoff` is reset once in sync).
async fn follow(
    url: &str,
    store: &Store,
    publisher: &Publisher,
    status: &DbStatus,
    backoff: &mut backon::ExponentialBackoff,
) -> SyncError {
    match follow_inner(url, store, publisher, status, backoff).await {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

async fn follow_inner(
    url: &str,
    store: &Store,
    publisher: &Publisher,
    status: &DbStatus,
    backoff: &mut backon::ExponentialBackoff,
) -> Result<std::convert::Infallible, SyncError> {
    let mut listener = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut listener = PgListener::connect(url).await?;
        listener
            .listen_all(Followed::ALL.map(Followed::channel))
            .await?;
        Ok::<_, sqlx::Error>(listener)
    })
    .await
    .map_err(|_| SyncError::Timeout)??;
    // Listening first, reading second: nothing committed in between is missed.
    for followed in Followed::ALL {
        followed.resync(publisher, store).await?;
    }
    status.reachable();
    *backoff = reconnect_backoff();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            received = listener.try_recv() => {
                let Some(notification) = received? else {
                    return Err(SyncError::Lost);
                };
                let Some(followed) = Followed::ALL
                    .into_iter()
                    .find(|f| f.channel() == notification.channel())
                else {
                    continue;
                };
                let Some(applied) = followed.applied(publisher) else {
                    continue;
                };
                let newer = notification
                    .payload()
                    .parse::<u64>()
                    .map_or(true, |g| g > applied);
                if newer {
                    followed.resync(publisher, store).await?;
                }
            }
            _ = check.tick() => {
                for followed in Followed::ALL {
                    let Some(applied) = followed.applied(publisher) else {
                        continue;
                    };
                    let committed = followed.committed(store).await?;
                    if committed > applied {
                        tracing::warn!(committed, what = followed.channel(),
                            "a change arrived without its notification; resyncing");
                        followed.resync(publisher, store).await?;
                    }
                }
            }
        }
    }
}

/// What the follower follows: each with its channel, the generation this
/// node applied, the committed one, and how to catch up.
#[derive(Clone, Copy, Debug)]
enum Followed {
    Membership,
    Certificates,
    Acme,
}

impl Followed {
    const ALL: [Followed; 3] = [Followed::Membership, Followed::Certificates, Followed::Acme];

    fn channel(self) -> &'static str {
        match self {
            Followed::Membership => CHANNEL,
            Followed::Certificates => CERT_CHANNEL,
            Followed::Acme => ACME_CHANNEL,
        }
    }

    /// `None`: not followed on this node (ACME off).
    fn applied(self, publisher: &Publisher) -> Option<u64> {
        match self {
            Followed::Membership => Some(publisher.pool.load().generation()),
            Followed::Certificates => Some(publisher.certificates.generation()),
            Followed::Acme => publisher.acme.as_ref().map(|acme| acme.generation()),
        }
    }

    async fn committed(self, store: &Store) -> Result<u64, StoreError> {
        match self {
            Followed::Membership => store.generation().await,
            Followed::Certificates => store.certificate_generation().await,
            Followed::Acme => store.acme_generation().await,
        }
    }

    async fn resync(self, publisher: &Publisher, store: &Store) -> Result<(), SyncError> {
        match self {
            Followed::Membership => publisher.resync(store).await,
            Followed::Certificates => publisher.resync_certificates(store).await,
            Followed::Acme => match &publisher.acme {
                Some(acme) => acme.resync().await.map(drop).map_err(Into::into),
                None => Ok(()),
            },
        }
    }
}
