//! The node's ACME manager: reads the managed domains, orders a
//! certificate for each one that is due (under a lease, so one node orders
//! a given domain at a time), stores the result and backs off after
//! failures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client;
use super::order::{self, Issued, OrderFailed};
use super::Challenges;
use crate::config;
use crate::store::{AcmeState, DomainRecord, DomainStatus, Store, StoreError};
use crate::tls::{unix_now, Keeper};

/// A node holds a domain's lease this long (database clock), extended
/// every [`LEASE_EXTEND`] while its order runs; an order (account
/// included) is abandoned after [`ORDER_TIMEOUT`].
const LEASE: i64 = 300;
const LEASE_EXTEND: Duration = Duration::from_secs(60);
const ORDER_TIMEOUT: Duration = Duration::from_secs(240);
/// A domain whose order's outcome could not be recorded is left alone this long.
const HOLD_OFF: i64 = 300;
/// ... and one whose lease could not be taken (a database refusing writes).
const LEASE_RETRY: i64 = 30;
/// Orders running at once on one node.
const PARALLEL_ORDERS: usize = 4;
/// The manager looks at the domains at least this often.
const LOOK_EVERY: Duration = Duration::from_secs(30);
/// Backoff after failures: 30 s doubling up to 6 h; never before the
/// CA's `Retry-After`; an hour at least when the CA says we are rate
/// limited without saying until when.
const BACKOFF_FIRST: i64 = 30;
const BACKOFF_MAX: i64 = 6 * 3600;
const RATE_LIMITED: i64 = 3600;
/// Jitter on renewal times: up to this share of `renew_before` earlier, so
/// that domains added together do not renew together.
const RENEW_JITTER: f64 = 0.1;
/// Time for other nodes to apply a new challenge answer (the NOTIFY
/// round trip) before the CA is told to look, on PostgreSQL.
const CHALLENGE_SETTLE: Duration = Duration::from_millis(250);

/// ACME counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AcmeStats {
    pub orders_ok: AtomicU64,
    pub orders_failed: AtomicU64,
    /// Successful orders that replaced a certificate.
    pub renewals: AtomicU64,
}

/// A node's ACME service.
pub struct Acme {
    config: config::Acme,
    store: Store,
    keeper: Arc<Keeper>,
    pub challenges: Arc<Challenges>,
    pub stats: AcmeStats,
    /// This process's lease owner name.
    node: String,
    wake: Notify,
    /// The ACME generation applied to `challenges` (checked and set with
    /// the publish, so an older read never replaces a newer one).
    applied: Mutex<u64>,
    account: super::account::Accounts,
    /// Domains this node leaves alone until then (the outcome of their
    /// last order could not be recorded: no loop of orders).
    held: Mutex<std::collections::HashMap<String, i64>>,
    /// Domains this node is ordering now.
    running: Mutex<HashSet<String>>,
    /// The managed domains as last read, with their status and next try
    /// (on-demand handshakes check it).
    managed: Mutex<std::collections::HashMap<String, (DomainStatus, Option<i64>)>>,
    /// Itself (on-demand work is spawned with an owned handle).
    me: std::sync::Weak<Acme>,
    /// The runtime that built it (on-demand work runs there, not on a
    /// proxy worker's).
    main: tokio::runtime::Handle,
    orders: Semaphore,
    /// On-demand asks.
    pub(super) asked: super::on_demand::Asked,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.config.directory)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// A node's ACME service (call it on the main runtime).
    pub fn new(config: config::Acme, store: Store, keeper: Arc<Keeper>) -> Arc<Self> {
        let mut id = [0u8; 6];
        let _ = getrandom::fill(&mut id);
        let node = format!(
            "{}-{}",
            std::process::id(),
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        Arc::new_cyclic(|me| Acme {
            config,
            store,
            keeper,
            challenges: Arc::default(),
            stats: AcmeStats::default(),
            node,
            wake: Notify::new(),
            applied: Mutex::new(0),
            account: Default::default(),
            held: Mutex::default(),
            running: Mutex::default(),
            managed: Mutex::default(),
            me: me.clone(),
            main: tokio::runtime::Handle::current(),
            orders: Semaphore::new(PARALLEL_ORDERS),
            asked: Default::default(),
        })
    }

    /// Whether handshakes may obtain certificates on demand (`acme.ask`).
    pub fn asks(&self) -> bool {
        self.config.ask.is_some()
    }

    /// Calls made to the `acme.ask` service.
    pub fn ask_calls(&self) -> u64 {
        self.asked.calls.load(Relaxed)
    }

    pub(super) fn config(&self) -> &config::Acme {
        &self.config
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn keeper(&self) -> &Keeper {
        &self.keeper
    }

    /// `name`'s status and next try at the last read, if it is managed.
    pub(super) fn managed_status(&self, name: &str) -> Option<(DomainStatus, Option<i64>)> {
        self.managed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    pub(super) fn me(&self) -> Option<Arc<Acme>> {
        self.me.upgrade()
    }

    pub(super) fn main_runtime(&self) -> &tokio::runtime::Handle {
        &self.main
    }

    /// The ACME generation this node has applied.
    pub fn generation(&self) -> u64 {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the domains and challenge answers, serve the answers and let
    /// the manager look at the domains (after a change: the admin API's, or
    /// another node's).
    pub async fn resync(&self) -> Result<AcmeState, StoreError> {
        let state = self.read().await?;
        self.wake.notify_one();
        Ok(state)
    }

    /// Read the domains and challenge answers and serve the answers.
    async fn read(&self) -> Result<AcmeState, StoreError> {
        let state = self.store.acme_state().await?;
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation >= *applied {
            self.challenges.publish(&state.challenges);
            *applied = state.generation;
            *self.managed.lock().unwrap_or_else(|p| p.into_inner()) = state
                .domains
                .iter()
                .map(|d| (d.name.clone(), (d.status, d.retry_at)))
                .collect();
        }
        drop(applied);
        Ok(state)
    }

    /// Start the manager.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let acme = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                () = acme.run() => {}
                () = shutdown.cancelled() => {}
            }
        })
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = match self.read().await {
                Ok(state) => self.start_due(&state),
                Err(err) => {
                    tracing::warn!(%err, "ACME: cannot read the managed domains");
                    LOOK_EVERY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Start an order for every domain that is due; how long until the
    /// next one is.
    fn start_due(self: &Arc<Self>, state: &AcmeState) -> Duration {
        let now = unix_now();
        let mut next = now + LOOK_EVERY.as_secs() as i64;
        let held = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.retain(|name, until| {
                *until > now && state.domains.iter().any(|d| &d.name == name)
            });
            held.clone()
        };
        for domain in &state.domains {
            let due = due_at(domain).max(held.get(&domain.name).copied().unwrap_or(0));
            if due > now {
                next = next.min(due);
                continue;
            }
            if domain.lease_until.is_some_and(|until| until >= now)
                && domain.lease_owner.as_deref() != Some(&self.node)
            {
                next = next.min(domain.lease_until.unwrap_or(now) + 1);
                continue;
            }
            if !self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(domain.name.clone())
            {
                continue;
            }
            let acme = Arc::clone(self);
            let domain = domain.clone();
            tokio::spawn(async move {
                // Even if the order panics, its domain is not left "running".
                let _done = Running(Arc::clone(&acme), domain.name.clone());
                acme.order(domain).await;
            });
        }
        Duration::from_secs(u64::try_from(next - now).unwrap_or(0).max(1))
    }

    /// Order a certificate for `domain` if this node gets its lease.
    async fn order(self: &Arc<Self>, domain: DomainRecord) {
        let Ok(_slot) = self.orders.acquire().await else {
            return;
        };
        match self.store.take_lease(&domain.name, &self.node, LEASE).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(domain = %domain.name, %err, "ACME: cannot take the order lease");
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(domain.name.clone(), unix_now() + LEASE_RETRY);
                return;
            }
        }
        let renewal = domain.certificate_id.is_some();
        tracing::info!(domain = %domain.name, renewal, "ACME: ordering a certificate");
        let started = std::time::Instant::now();
        let result = match self.store.can_store_keys().await {
            Ok(true) => self.obtain_under_lease(&domain.name).await,
            Ok(false) => Err(OrderFailed::said(
                crate::store::StoreError::WouldStoreUnsealed.to_string(),
            )),
            Err(err) => Err(OrderFailed::said(format!("the store: {err}"))),
        };
        let outcome = match result {
            Ok(issued) => self.issued(&domain, issued, renewal).await,
            Err(failed) => self.failed(&domain, failed).await,
        };
        if let Err(err) = outcome {
            // Leave it alone for a while rather than order again at once.
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(domain.name.clone(), unix_now() + HOLD_OFF);
            self.stats.orders_failed.fetch_add(1, Relaxed);
            tracing::error!(domain = %domain.name, %err, retry_in = HOLD_OFF,
                "ACME: cannot record the order's outcome");
        } else {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&domain.name);
        }
        tracing::debug!(domain = %domain.name, elapsed = ?started.elapsed(), "ACME: order done");
    }

    /// [`Self::obtain`], bounded by [`ORDER_TIMEOUT`], while the lease is
    /// extended every [`LEASE_EXTEND`]; an order whose lease is lost (taken
    /// by another node after this one could not reach the database for a
    /// whole lease) is abandoned: the other node's order goes on.
    async fn obtain_under_lease(&self, domain: &str) -> Result<Issued, OrderFailed> {
        let keep_lease = async {
            loop {
                tokio::time::sleep(LEASE_EXTEND).await;
                match self.store.extend_lease(domain, &self.node, LEASE).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return "the order's lease is gone (the domain was deleted, or \
                            another node took the order over)"
                            .to_owned()
                    }
                    // A database that does not answer for a moment: the lease
                    // has minutes left; the next try may reach it.
                    Err(err) => {
                        tracing::warn!(%domain, %err, "ACME: cannot extend the order lease")
                    }
                }
            }
        };
        let bounded = tokio::time::timeout(ORDER_TIMEOUT, self.obtain(domain));
        tokio::select! {
            result = bounded => result.unwrap_or_else(|_| {
                Err(OrderFailed::said(format!(
                    "the CA did not finish the order within {} s",
                    ORDER_TIMEOUT.as_secs()
                )))
            }),
            lost = keep_lease => Err(OrderFailed::said(lost)),
        }
    }

    /// The account, then one order; an account the CA no longer knows is
    /// forgotten (the next order registers again).
    async fn obtain(&self, domain: &str) -> Result<Issued, OrderFailed> {
        let result = client::remembering(async {
            let account = self.account.get(&self.config, &self.store).await?;
            let publish = |token: String, answer: String| self.publish(token, answer, domain);
            order::obtain(&account, domain, publish).await
        })
        .await;
        if let Err(failed) = &result {
            if failed.account_gone {
                self.account.forget();
            }
        }
        result
    }

    /// Store a challenge answer and serve it here at once (other nodes
    /// follow the notification).
    async fn publish(&self, token: String, answer: String, domain: &str) -> Result<(), String> {
        self.store
            .add_challenge(&token, &answer, domain, unix_now())
            .await
            .map_err(|e| e.to_string())?;
        self.read().await.map_err(|e| e.to_string())?;
        if self.store.postgres_url().is_some() {
            tokio::time::sleep(CHALLENGE_SETTLE).await;
        }
        Ok(())
    }

    async fn issued(
        &self,
        domain: &DomainRecord,
        issued: Issued,
        renewal: bool,
    ) -> Result<(), StoreError> {
        let parsed = match crate::tls::parse(&issued.chain_pem, &issued.key_pem, unix_now()) {
            Ok(parsed) => parsed,
            Err(err) => {
                let failed =
                    OrderFailed::said(format!("the CA's certificate cannot be served: {err}"));
                return self.failed(domain, failed).await;
            }
        };
        let lifetime = (parsed.not_after - parsed.not_before).max(1);
        // Never more than half the lifetime: a renew_before longer than a
        // short-lived certificate would renew it again at once, forever.
        let renew_before = self
            .config
            .renew_before
            .map_or(lifetime / 3, |d| {
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
            })
            .min(lifetime / 2);
        let jitter = (renew_before as f64 * RENEW_JITTER * random_unit()) as i64;
        let renews_at = parsed.not_after - renew_before - jitter;
        // Counted before the store shows the domain valid (whoever sees it
        // valid sees it counted), taken back if storing fails.
        let counters = [
            (true, &self.stats.orders_ok),
            (renewal, &self.stats.renewals),
        ];
        for (counts, counter) in counters {
            if counts {
                counter.fetch_add(1, Relaxed);
            }
        }
        let stored = self
            .store
            .domain_issued(
                &domain.name,
                &self.node,
                (&issued.chain_pem, &issued.key_pem),
                parsed.not_after,
                renews_at,
            )
            .await;
        let id = match stored {
            Ok(id) => id,
            Err(err) => {
                for (counts, counter) in counters {
                    if counts {
                        counter.fetch_sub(1, Relaxed);
                    }
                }
                return Err(err);
            }
        };
        let stored = self.store.certificates().await?;
        let keeper = Arc::clone(&self.keeper);
        let _ = tokio::task::spawn_blocking(move || keeper.apply(stored)).await;
        self.read().await?;
        tracing::info!(domain = %domain.name, certificate = id, not_after = parsed.not_after,
            renews_at, renewal, "ACME: certificate issued");
        Ok(())
    }

    async fn failed(&self, domain: &DomainRecord, failed: OrderFailed) -> Result<(), StoreError> {
        let now = unix_now();
        let exponent = u32::try_from(domain.failures.clamp(0, 20)).unwrap_or(20);
        let mut wait = BACKOFF_FIRST
            .saturating_mul(1i64 << exponent)
            .min(BACKOFF_MAX);
        if failed.rate_limited && failed.retry_after.is_none() {
            // Rate limited without saying until when.
            wait = wait.max(RATE_LIMITED);
        }
        // Plus up to a tenth more, so domains that failed together (a CA
        // outage) do not all retry at the same second.
        let wait = wait + (wait as f64 * 0.1 * random_unit()) as i64;
        let mut retry_at = now + wait;
        if let Some(after) = failed.retry_after {
            let after = after
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            // Rate limits are the CA's to set (a week at most, see
            // `client`); any other refusal's time waits no longer than the
            // longest backoff, so a CA's maintenance window cannot let a
            // certificate run out.
            let longest = if failed.rate_limited {
                after
            } else {
                now + BACKOFF_MAX
            };
            retry_at = retry_at.max(after.min(longest));
        }
        self.store
            .domain_failed(&domain.name, &self.node, &failed.reason, retry_at)
            .await?;
        self.stats.orders_failed.fetch_add(1, Relaxed);
        self.read().await?;
        tracing::warn!(domain = %domain.name, reason = %failed.reason, retry_in = retry_at - now,
            "ACME: order failed");
        Ok(())
    }
}

/// When `domain` is next due for an order (Unix seconds; `0`: now).
fn due_at(domain: &DomainRecord) -> i64 {
    let retry = domain.retry_at.unwrap_or(0);
    match domain.status {
        DomainStatus::Pending | DomainStatus::Failed => retry,
        DomainStatus::Valid => {
            let missing = !domain.certificate_present;
            let renew = if missing {
                0
            } else {
                domain.renews_at.unwrap_or(0)
            };
            renew.max(retry)
        }
    }
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// A domain's order in progress on this node; its end (even a panic) lets
/// the manager look at the domain again.
struct Running(Arc<Acme>, String);

impl Drop for Running {
    fn drop(&mut self) {
        let Running(acme, name) = self;
        acme.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name.as_str());
        acme.wake.notify_one();
    }
}
