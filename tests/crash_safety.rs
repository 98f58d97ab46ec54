//! Crash safety: the switchyard binary is killed with `kill -9` at a random
//! moment during a stream of admin writes (add, drain or reweight, remove,
//! replace the whole pool), 50 times on SQLite and 50 times on PostgreSQL,
//! and restarted on the same database each time. After every restart each
//! acknowledged change (a `2xx` answer received whole) is there, and the
//! write that was in flight at the kill is wholly applied or wholly absent:
//! the pool equals the one before it or the one after it, the generation is
//! the one that goes with that pool (never older), and the change log holds
//! all of that write's rows or none of them.
//!
//! One writer sends one write at a time, so the expected pool is known
//! exactly. The seed is printed; `SWITCHYARD_CRASH_SEED=<seed>` replays the
//! same writes and kill moments (the interleaving with the process still
//! depends on timing).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{drop_database, postgres_or_skip, sessions_ended, Admin, Process, Reply, Rng};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "crash-safety-token-0123456789";
/// Kills per database.
const KILLS: usize = 50;
/// Each kill comes at a moment drawn uniformly from this long after the
/// writes start (a write takes 5 to 15 ms on SQLite and 20 to 60 ms on
/// PostgreSQL on a busy two-core machine: a few to a few dozen writes).
const KILL_WITHIN: Duration = Duration::from_millis(200);
/// The writes draw addresses from `127.0.0.1:30000` upwards; nothing
/// listens there and no traffic is proxied: only membership matters here.
const ADDRESSES: u16 = 14;
/// Bounds one process lifetime's writes (the kill comes long before).
const MOST_WRITES_PER_LIFE: usize = 5_000;
/// No admin answer takes this long unless something is wrong.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_acknowledged_write_survives_kill_9_and_none_is_half_there() {
    let dir = tempfile::tempdir().unwrap();
    kill_50_times(Database::Sqlite, dir, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_acknowledged_write_survives_kill_9_and_none_is_half_there() {
    let test = "postgres_every_acknowledged_write_survives_kill_9_and_none_is_half_there";
    let Some(url) = postgres_or_skip(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    kill_50_times(Database::Postgres(url.clone()), dir, "postgres").await;
    drop_database(&url).await;
}

/// Start, write until a random `kill -9`, restart and check; 50 times.
async fn kill_50_times(database: Database, mut dir: tempfile::TempDir, name: &str) {
    let started = Instant::now();
    let (mut rng, seed) = Rng::seeded_from_env("SWITCHYARD_CRASH_SEED", name);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tally = Tally::default();
    for kill in 0..KILLS {
        let process = database.start(dir).await;
        let stored = Stored::read(&process.admin).await;
        let outcome = ledger.lock().unwrap().settle(stored, kill);
        tally.count(outcome);

        let writer = tokio::spawn(write_until_killed(
            process.admin.clone(),
            Arc::clone(&ledger),
            rng.fork(),
        ));
        let moment = Duration::from_micros(rng.below(KILL_WITHIN.as_micros() as u64));
        tokio::time::sleep(moment).await;
        if writer.is_finished() {
            if let Err(panic) = writer.await {
                std::panic::resume_unwind(panic.into_panic());
            }
            panic!("seed {seed}, kill {kill}: the writer stopped while the process was alive");
        }
        dir = process.kill().await;
        if let Err(panic) = writer.await {
            std::panic::resume_unwind(panic.into_panic());
        }
        database.wait_for_the_dead().await;
    }
    let process = database.start(dir).await;
    let stored = Stored::read(&process.admin).await;
    let outcome = ledger.lock().unwrap().settle(stored, KILLS);
    tally.count(outcome);
    let acknowledged = ledger.lock().unwrap().acknowledged;
    let generation = ledger.lock().unwrap().generation;
    println!(
        "MEASURE crash safety ({name}, seed {seed}): {KILLS} kills in {:.1?}; {acknowledged} writes \
         acknowledged, all present; in flight at the kill: {} applied whole, {} absent whole \
         (by kind, applied/absent: {:?}), {} kills before the first write; final generation \
         {generation}",
        started.elapsed(),
        tally.applied,
        tally.absent,
        tally.by_kind,
        tally.idle
    );
    assert_eq!(tally.applied + tally.absent + tally.idle, KILLS);
    // Neither check above was vacuous: writes were acknowledged, and kills
    // fell both after a write's commit and before it.
    assert!(acknowledged > 0, "writes were acknowledged");
    assert!(
        tally.applied > 0 && tally.absent > 0,
        "kills caught writes in flight on both sides of their commit: {tally:?}"
    );
}

/// Where the membership lives between lifetimes.
enum Database {
    Sqlite,
    Postgres(String),
}

impl Database {
    async fn start(&self, dir: tempfile::TempDir) -> Process {
        let args = ["--admin-token", TOKEN, "--workers", "1"];
        match self {
            Database::Sqlite => Process::start_in(dir, &args).await,
            Database::Postgres(url) => Process::start_with_database(dir, url, &args).await,
        }
    }

    /// After a kill, wait until the killed process can change nothing more:
    /// at once for SQLite (its writes were the process's own), and once the
    /// server has ended its sessions for PostgreSQL.
    async fn wait_for_the_dead(&self) {
        if let Database::Postgres(url) = self {
            let left = sessions_ended(url, Duration::from_secs(10)).await;
            assert_eq!(left, 0, "the killed process's sessions end");
        }
    }
}

/// One backend as the pool lists it; `id` is `None` until it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    id: Option<String>,
    weight: u64,
    state: String,
}

/// The pool by address.
type Pool = BTreeMap<String, Member>;

/// An admin write, with what the writer expects of it.
#[derive(Clone, Debug)]
enum Write {
    Add {
        address: String,
        weight: u64,
    },
    Patch {
        address: String,
        id: String,
        weight: Option<u64>,
        state: Option<&'static str>,
    },
    Remove {
        address: String,
        id: String,
    },
    Replace {
        wanted: Vec<(String, u64, &'static str)>,
    },
}

impl Write {
    /// A valid write for `pool`, drawn from `rng`.
    fn random(rng: &mut Rng, pool: &Pool) -> Write {
        let absent: Vec<String> = (0..ADDRESSES)
            .map(|i| format!("127.0.0.1:{}", 30_000 + i))
            .filter(|a| !pool.contains_key(a))
            .collect();
        let member = |rng: &mut Rng| {
            let at = rng.below(pool.len() as u64) as usize;
            let (address, member) = pool.iter().nth(at).unwrap();
            (address.clone(), member.id.clone().unwrap())
        };
        match rng.below(100) {
            0..35 if !absent.is_empty() => Write::Add {
                address: absent[rng.below(absent.len() as u64) as usize].clone(),
                weight: 1 + rng.below(5),
            },
            35..65 if !pool.is_empty() => {
                let (address, id) = member(rng);
                let old = &pool[&address];
                let toggled = if old.state == "active" {
                    "draining"
                } else {
                    "active"
                };
                let reweighted = 1 + (old.weight + rng.below(4)) % 5;
                let (weight, state) = match rng.below(3) {
                    0 => (None, Some(toggled)),
                    1 => (Some(reweighted), None),
                    _ => (Some(reweighted), Some(toggled)),
                };
                Write::Patch {
                    address,
                    id,
                    weight,
                    state,
                }
            }
            65..85 if !pool.is_empty() => {
                let (address, id) = member(rng);
                Write::Remove { address, id }
            }
            _ => {
                // A new pool that keeps some members (some changed), drops
                // others and adds new ones: many rows change at once.
                let size = rng.below(u64::from(ADDRESSES) / 2 + 1);
                let mut wanted: Vec<(String, u64, &'static str)> = Vec::new();
                while (wanted.len() as u64) < size {
                    let address = format!("127.0.0.1:{}", 30_000 + rng.below(ADDRESSES.into()));
                    if wanted.iter().all(|(a, ..)| *a != address) {
                        let state = if rng.chance(20) { "draining" } else { "active" };
                        wanted.push((address, 1 + rng.below(3), state));
                    }
                }
                Write::Replace { wanted }
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Write::Add { .. } => "POST",
            Write::Patch { .. } => "PATCH",
            Write::Remove { .. } => "DELETE",
            Write::Replace { .. } => "PUT",
        }
    }

    fn request(&self) -> (Method, String, Option<Value>) {
        match self {
            Write::Add { address, weight } => (
                Method::POST,
                "/api/v1/backends".into(),
                Some(json!({"address": address, "weight": weight})),
            ),
            Write::Patch {
                id, weight, state, ..
            } => {
                let mut body = json!({});
                if let Some(weight) = weight {
                    body["weight"] = json!(weight);
                }
                if let Some(state) = state {
                    body["state"] = json!(state);
                }
                (Method::PATCH, format!("/api/v1/backends/{id}"), Some(body))
            }
            Write::Remove { id, .. } => (Method::DELETE, format!("/api/v1/backends/{id}"), None),
            Write::Replace { wanted } => (
                Method::PUT,
                "/api/v1/backends".into(),
                Some(json!({"backends": wanted
                    .iter()
                    .map(|(address, weight, state)| json!({"address": address, "weight": weight, "state": state}))
                    .collect::<Vec<_>>()})),
            ),
        }
    }

    /// The pool after this write (new members' ids unknown).
    fn apply(&self, pool: &Pool) -> Pool {
        let mut after = pool.clone();
        match self {
            Write::Add { address, weight } => {
                after.insert(
                    address.clone(),
                    Member {
                        id: None,
                        weight: *weight,
                        state: "active".into(),
                    },
                );
            }
            Write::Patch {
                address,
                weight,
                state,
                ..
            } => {
                let member = after.get_mut(address).unwrap();
                member.weight = weight.unwrap_or(member.weight);
                member.state = state.map_or(member.state.clone(), str::to_owned);
            }
            Write::Remove { address, .. } => {
                after.remove(address);
            }
            Write::Replace { wanted } => {
                after = wanted
                    .iter()
                    .map(|(address, weight, state)| {
                        let id = pool.get(address).and_then(|m| m.id.clone());
                        let member = Member {
                            id,
                            weight: *weight,
                            state: (*state).into(),
                        };
                        (address.clone(), member)
                    })
                    .collect();
            }
        }
        after
    }

    /// How many rows of the change log this write adds.
    fn logged(&self, before: &Pool, after: &Pool) -> usize {
        match self {
            Write::Replace { .. } => {
                let dropped = before.keys().filter(|a| !after.contains_key(*a)).count();
                let changed = after
                    .iter()
                    .filter(|(address, member)| {
                        before.get(*address).is_none_or(|old| {
                            (old.weight, &old.state) != (member.weight, &member.state)
                        })
                    })
                    .count();
                dropped + changed
            }
            _ => 1,
        }
    }
}

/// What the writer knows: the acknowledged pool and generation, and the
/// write in flight.
#[derive(Default)]
struct Ledger {
    pool: Pool,
    generation: u64,
    in_flight: Option<Write>,
    acknowledged: usize,
}

/// What became of the write in flight at a kill.
#[derive(Debug)]
enum Outcome {
    Applied,
    Absent,
    /// Killed before the first write was sent.
    Idle,
}

#[derive(Debug, Default)]
struct Tally {
    applied: usize,
    absent: usize,
    idle: usize,
    /// Writes in flight at a kill, by method: (applied, absent).
    by_kind: BTreeMap<&'static str, (usize, usize)>,
}

impl Tally {
    fn count(&mut self, outcome: Option<(Outcome, &'static str)>) {
        match outcome {
            None => {}
            Some((Outcome::Idle, _)) => self.idle += 1,
            Some((Outcome::Applied, kind)) => {
                self.applied += 1;
                self.by_kind.entry(kind).or_default().0 += 1;
            }
            Some((Outcome::Absent, kind)) => {
                self.absent += 1;
                self.by_kind.entry(kind).or_default().1 += 1;
            }
        }
    }
}

impl Ledger {
    /// Record an acknowledged write, checking its answer on the way.
    fn acknowledge(&mut self, write: &Write, reply: &Reply) {
        let mut after = write.apply(&self.pool);
        match write {
            Write::Add { address, .. } => {
                assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
                let id = reply.json["id"].as_str().expect("an id").to_owned();
                after.get_mut(address).unwrap().id = Some(id);
            }
            Write::Patch { address, .. } => {
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                let member = &after[address];
                assert_eq!(
                    (reply.json["weight"].as_u64(), reply.json["state"].as_str()),
                    (Some(member.weight), Some(member.state.as_str())),
                    "the answer is the patched backend"
                );
            }
            Write::Remove { .. } => {
                assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text)
            }
            Write::Replace { .. } => {
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                let (listed, generation) = pool_of(&reply.json);
                assert!(
                    same(&after, &listed),
                    "answered {listed:?}, wanted {after:?}"
                );
                assert_eq!(generation, self.generation + 1, "one write, one generation");
                after = listed;
            }
        }
        self.pool = after;
        self.generation += 1;
        self.in_flight = None;
        self.acknowledged += 1;
    }

    /// After a restart: check the stored membership against what was
    /// acknowledged and what was in flight, then adopt it.
    fn settle(&mut self, stored: Stored, kill: usize) -> Option<(Outcome, &'static str)> {
        let Stored {
            pool: stored,
            generation,
            logged,
        } = stored;
        let newer: Vec<u64> = logged
            .into_iter()
            .filter(|g| *g > self.generation)
            .collect();
        let context = format!(
            "after kill {kill}: stored generation {generation} {stored:?}; acknowledged \
             generation {} {:?}; in flight {:?}; newer change log rows at generations {newer:?}",
            self.generation, self.pool, self.in_flight
        );
        let unchanged = same(&self.pool, &stored) && generation == self.generation;
        let outcome = match self.in_flight.take() {
            _ if kill == 0 => {
                assert!(
                    unchanged,
                    "a new database is empty at generation 0, {context}"
                );
                None
            }
            None => {
                assert!(unchanged, "every acknowledged write is there, {context}");
                Some((Outcome::Idle, "none"))
            }
            Some(write) => {
                let after = write.apply(&self.pool);
                let applied = same(&after, &stored) && generation == self.generation + 1;
                assert!(
                    unchanged || applied,
                    "the pool is the acknowledged one, or that plus the write in flight, whole: {context}"
                );
                let rows = if applied {
                    write.logged(&self.pool, &after)
                } else {
                    0
                };
                assert!(
                    newer.len() == rows && newer.iter().all(|g| *g == generation),
                    "the change log has {rows} rows of the write in flight: {context}"
                );
                let outcome = if applied {
                    Outcome::Applied
                } else {
                    Outcome::Absent
                };
                Some((outcome, write.kind()))
            }
        };
        assert!(
            generation >= self.generation,
            "the generation never goes back: {context}"
        );
        self.pool = stored;
        self.generation = generation;
        outcome
    }
}

/// The membership a restarted process reads from the database.
struct Stored {
    pool: Pool,
    generation: u64,
    /// The generations of the newest rows of the change log.
    logged: Vec<u64>,
}

impl Stored {
    async fn read(admin: &Admin) -> Stored {
        let list = admin.get("/api/v1/backends").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        let (pool, generation) = pool_of(&list.json);
        let changes = admin.get("/api/v1/changes?limit=100").await;
        assert_eq!(changes.status, StatusCode::OK, "{}", changes.text);
        let logged = changes.json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["generation"].as_u64().unwrap())
            .collect();
        Stored {
            pool,
            generation,
            logged,
        }
    }
}

/// Send writes one at a time, recording each acknowledged one, until the
/// process dies under a write.
async fn write_until_killed(admin: Admin, ledger: Arc<Mutex<Ledger>>, mut rng: Rng) {
    for _ in 0..MOST_WRITES_PER_LIFE {
        let write = {
            let mut ledger = ledger.lock().unwrap();
            let write = Write::random(&mut rng, &ledger.pool);
            ledger.in_flight = Some(write.clone());
            write
        };
        let (method, path, body) = write.request();
        let Ok(reply) = admin.try_call(method, &path, body, ANSWER_WITHIN).await else {
            return;
        };
        assert!(
            reply.status.is_success(),
            "{write:?} was refused: {} {}",
            reply.status,
            reply.text
        );
        ledger.lock().unwrap().acknowledge(&write, &reply);
    }
}

/// A `{"generation", "backends"}` list as a pool and its generation.
fn pool_of(list: &Value) -> (Pool, u64) {
    let pool = list["backends"]
        .as_array()
        .expect("a backend list")
        .iter()
        .map(|b| {
            let member = Member {
                id: Some(b["id"].as_str().unwrap().to_owned()),
                weight: b["weight"].as_u64().unwrap(),
                state: b["state"].as_str().unwrap().to_owned(),
            };
            (b["address"].as_str().unwrap().to_owned(), member)
        })
        .collect();
    (pool, list["generation"].as_u64().unwrap())
}

/// Whether `stored` is `expected`: the same addresses, weights and states,
/// and the same ids wherever `expected` knows them.
fn same(expected: &Pool, stored: &Pool) -> bool {
    expected.len() == stored.len()
        && expected.iter().all(|(address, want)| {
            stored.get(address).is_some_and(|got| {
                (want.weight, &want.state) == (got.weight, &got.state)
                    && want
                        .id
                        .as_ref()
                        .is_none_or(|id| got.id.as_ref() == Some(id))
            })
        })
}
