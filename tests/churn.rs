//! Churn under load: ten backends, one of them added or removed through the
//! admin API every 50 ms for 60 s (removed means deleted or drained; the
//! pool keeps 5 to 10 active), while keep-alive clients send requests
//! without pause. The proxy makes no error: no 502, 503 or 504, no cut
//! connection, no short body. Requests on a backend that leaves the pool
//! mid-flight finish, as the drain contract says. And the proxy's memory
//! (its RSS, read from /proc) at the end is what it was after the warm-up.
//!
//! The proxy is the switchyard binary as a child process, so its RSS is its
//! own. `SWITCHYARD_CHURN_SECS` sets the length of the run (default 60).

mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{text, Backend, Process, Rng};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

const TOKEN: &str = "churn-test-token-0123456789";
const BACKENDS: usize = 10;
const FEWEST_ACTIVE: usize = 5;
const CHURN_EVERY: Duration = Duration::from_millis(50);
/// Keep-alive clients sending one request after another.
const CLIENTS: usize = 4;
/// Bounds each client, whatever the length of the run.
const MOST_REQUESTS_PER_CLIENT: usize = 2_000_000;
/// Half the backends stream their answer in four parts this far apart, so
/// that requests are often in flight when their backend leaves.
const PART_GAP: Duration = Duration::from_millis(2);
/// No answer takes this long unless something is wrong.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// RSS may grow this much after the warm-up (see `memory_stays_flat`).
const RSS_SLACK_KIB: u64 = 4 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backend_in_or_out_every_50_ms_under_load_costs_no_request_and_no_memory() {
    let run = Duration::from_secs(
        std::env::var("SWITCHYARD_CHURN_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let warm_up = (run / 6).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let (mut rng, seed) = Rng::seeded_from_env("SWITCHYARD_CHURN_SEED", "churn");
    let leaving = Arc::new(Leaving::default());
    let mut backends = Vec::new();
    for index in 0..BACKENDS {
        backends.push(backend(index, Arc::clone(&leaving)).await);
    }
    let proxy = Process::start(&["--admin-token", TOKEN]).await;
    let mut pool = Pool::new(&proxy, &backends).await;

    let started = Instant::now();
    let until = started + run;
    let traffic = Arc::new(Traffic::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(proxy.addr, until, rng.fork(), Arc::clone(&traffic))))
        .collect();

    let mut tick = tokio::time::interval(CHURN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rss_after_warm_up = None;
    let mut rss_samples = Vec::new();
    let most_changes = run.as_millis() / CHURN_EVERY.as_millis() + 1;
    for _ in 0..most_changes {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        pool.change_one(&mut rng, &leaving).await;
        if rss_samples.len() < (started.elapsed().as_secs() / 5) as usize {
            rss_samples.push(proxy.rss_kib());
        }
        if rss_after_warm_up.is_none() && started.elapsed() >= warm_up {
            rss_after_warm_up = Some(proxy.rss_kib());
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    let rss_at_end = proxy.rss_kib();
    let elapsed = started.elapsed();

    let requests = traffic.answered.load(Ordering::SeqCst);
    let errors = traffic.errors.lock().unwrap().clone();
    let error_count = traffic.error_count.load(Ordering::SeqCst);
    let finished_while_out = leaving.finished_while_out.load(Ordering::SeqCst);
    let served: Vec<usize> = leaving
        .served
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .collect();
    let rss_after_warm_up = rss_after_warm_up.expect("the warm-up ended before the run did");
    println!(
        "MEASURE churn (seed {seed}): {:.1?} run, {} membership changes ({} deletes, {} drains, \
         {} adds, {} reactivations), generation {}; {requests} requests ({:.0}/s) by {CLIENTS} \
         keep-alive clients, {error_count} errors, {} reconnects; {finished_while_out} requests \
         finished on a backend after it left the pool; per backend {served:?}",
        elapsed,
        pool.changes(),
        pool.deletes,
        pool.drains,
        pool.adds,
        pool.reactivations,
        pool.generation().await,
        requests as f64 / elapsed.as_secs_f64(),
        traffic.reconnects.load(Ordering::SeqCst),
    );
    println!(
        "MEASURE churn RSS: {rss_after_warm_up} KiB after the {warm_up:.1?} warm-up, {rss_at_end} KiB \
         at the end (every 5 s: {rss_samples:?})"
    );

    assert!(
        error_count == 0,
        "{error_count} requests failed; the first: {errors:#?}"
    );
    assert!(
        requests as u64 >= 20 * run.as_secs(),
        "traffic ran the whole time: {requests} requests"
    );
    assert!(
        pool.changes() as u64 >= 2 * run.as_secs(),
        "the pool churned the whole time: {} changes",
        pool.changes()
    );
    assert_eq!(
        pool.generation().await,
        pool.changes() as u64 + BACKENDS as u64,
        "every change was one generation"
    );
    assert!(
        served.iter().all(|n| *n > 0),
        "every backend served: {served:?}"
    );
    assert!(
        finished_while_out > 0,
        "some requests were in flight when their backend left, and finished"
    );
    memory_stays_flat(rss_after_warm_up, rss_at_end);
    proxy.stop().await;
}

/// After the warm-up the proxy holds what steady traffic needs: client and
/// backend connections, per-backend stats and health for all ten
/// addresses, the routing tables, allocator arenas for every thread. Churn
/// then only swaps snapshots of the same ten backends, so the end may exceed
/// that only by allocator noise and SQLite's page cache filling as the
/// change log grows (measured: a few hundred KiB to 1 MiB in a minute,
/// levelling off; +380 KiB over three minutes): 4 MiB or an eighth,
/// whichever is larger. Keeping one snapshot per change
/// (its table alone is 256 KiB; twenty changes a second) would pass that
/// within a second, and one backend connection per change (its buffers and
/// task, tens of KiB) within ten.
fn memory_stays_flat(after_warm_up: u64, at_end: u64) {
    let bound = after_warm_up + RSS_SLACK_KIB.max(after_warm_up / 8);
    assert!(
        at_end <= bound,
        "RSS grew from {after_warm_up} KiB after the warm-up to {at_end} KiB (bound {bound} KiB)"
    );
}

/// Which backends are out of the active pool, as the churn last
/// acknowledged, and what the backends saw.
struct Leaving {
    out: Mutex<HashSet<usize>>,
    /// Streamed answers whose last part left after their backend did.
    finished_while_out: AtomicUsize,
    served: Vec<AtomicUsize>,
}

impl Default for Leaving {
    fn default() -> Self {
        Leaving {
            out: Mutex::default(),
            finished_while_out: AtomicUsize::new(0),
            served: (0..BACKENDS).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
}

/// Backend `index`: answers `b<index> <path>\n` then `end\n`, in one piece
/// (even indexes) or streamed in four parts (odd ones).
async fn backend(index: usize, leaving: Arc<Leaving>) -> Backend {
    Backend::serve(
        move |req: Request<Incoming>| {
            let leaving = Arc::clone(&leaving);
            async move {
                leaving.served[index].fetch_add(1, Ordering::SeqCst);
                let head = format!("b{index} {}\n", req.uri().path());
                if index % 2 == 0 {
                    return Response::new(text(format!("{head}end\n")));
                }
                let (parts, mut body) = tokio::sync::mpsc::channel::<Bytes>(4);
                tokio::spawn(async move {
                    let last = ["part 1\n", "part 2\n", "end\n"];
                    let _ = parts.send(head.into()).await;
                    for (n, part) in last.iter().enumerate() {
                        tokio::time::sleep(PART_GAP).await;
                        if n == last.len() - 1 && leaving.out.lock().unwrap().contains(&index) {
                            leaving.finished_while_out.fetch_add(1, Ordering::SeqCst);
                        }
                        if parts
                            .send(Bytes::from_static(part.as_bytes()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                let frames = futures_util::stream::poll_fn(move |cx| {
                    body.poll_recv(cx)
                        .map(|part| part.map(|p| Ok::<_, Infallible>(Frame::data(p))))
                });
                Response::new(BodyExt::boxed(StreamBody::new(frames)))
            }
        },
        Arc::default(),
    )
    .await
}

/// Where each backend is, as far as the churn knows.
#[derive(Clone, Debug, PartialEq)]
enum Place {
    Active(String),
    Draining(String),
    Removed,
}

/// The ten backends in the proxy's pool, and the changes made to it.
struct Pool {
    admin: common::Admin,
    addresses: Vec<SocketAddr>,
    places: Vec<Place>,
    deletes: usize,
    drains: usize,
    adds: usize,
    reactivations: usize,
}

impl Pool {
    /// Add every backend to the proxy's empty pool.
    async fn new(proxy: &Process, backends: &[Backend]) -> Pool {
        let mut places = Vec::new();
        for backend in backends {
            places.push(Place::Active(
                proxy.admin.add(&backend.addr.to_string()).await,
            ));
        }
        Pool {
            admin: proxy.admin.clone(),
            addresses: backends.iter().map(|b| b.addr).collect(),
            places,
            deletes: 0,
            drains: 0,
            adds: 0,
            reactivations: 0,
        }
    }

    fn changes(&self) -> usize {
        self.deletes + self.drains + self.adds + self.reactivations
    }

    async fn generation(&self) -> u64 {
        self.admin.get("/api/v1/backends").await.json["generation"]
            .as_u64()
            .unwrap()
    }

    /// Take one active backend out (delete or drain it) or bring one back,
    /// keeping 5 to 10 active.
    async fn change_one(&mut self, rng: &mut Rng, leaving: &Leaving) {
        let active: Vec<usize> = (0..BACKENDS)
            .filter(|i| matches!(self.places[*i], Place::Active(_)))
            .collect();
        let take_out = active.len() == BACKENDS || (active.len() > FEWEST_ACTIVE && rng.chance(50));
        if take_out {
            let index = active[rng.below(active.len() as u64) as usize];
            let Place::Active(id) = self.places[index].clone() else {
                unreachable!()
            };
            if rng.chance(50) {
                self.admin.remove(&id).await;
                self.places[index] = Place::Removed;
                self.deletes += 1;
            } else {
                self.patch(&id, "draining").await;
                self.places[index] = Place::Draining(id);
                self.drains += 1;
            }
            leaving.out.lock().unwrap().insert(index);
            return;
        }
        let out: Vec<usize> = (0..BACKENDS).filter(|i| !active.contains(i)).collect();
        let index = out[rng.below(out.len() as u64) as usize];
        // Before the change: a request that ends after it may have started after it.
        leaving.out.lock().unwrap().remove(&index);
        self.places[index] = match self.places[index].clone() {
            Place::Draining(id) => {
                self.patch(&id, "active").await;
                self.reactivations += 1;
                Place::Active(id)
            }
            Place::Removed => {
                self.adds += 1;
                Place::Active(self.admin.add(&self.addresses[index].to_string()).await)
            }
            Place::Active(_) => unreachable!("only backends out of the pool come back"),
        };
    }

    async fn patch(&self, id: &str, state: &str) {
        let reply = self
            .admin
            .call(
                Method::PATCH,
                &format!("/api/v1/backends/{id}"),
                Some(json!({ "state": state })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

/// What the clients saw.
#[derive(Default)]
struct Traffic {
    /// Whole `200` answers from the right backend.
    answered: AtomicUsize,
    error_count: AtomicUsize,
    /// The first few errors.
    errors: Mutex<Vec<String>>,
    /// Keep-alive connections the proxy closed between requests.
    reconnects: AtomicUsize,
}

impl Traffic {
    fn error(&self, what: String) {
        self.error_count.fetch_add(1, Ordering::SeqCst);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
    }
}

/// One keep-alive client: a request for a random site, then the next,
/// until `until`.
async fn client(proxy: SocketAddr, until: Instant, mut rng: Rng, traffic: Arc<Traffic>) {
    let mut connection = None;
    for n in 0..MOST_REQUESTS_PER_CLIENT {
        if Instant::now() >= until {
            return;
        }
        let sender = match connection.as_mut() {
            Some(sender) => sender,
            None => match connect(proxy).await {
                Ok(sender) => connection.insert(sender),
                Err(e) => {
                    traffic.error(format!("connect: {e}"));
                    continue;
                }
            },
        };
        if sender.ready().await.is_err() {
            traffic.reconnects.fetch_add(1, Ordering::SeqCst);
            connection = None;
            continue;
        }
        let path = format!("/r/{n}");
        let request = Request::get(&path)
            .header("host", format!("site-{}.example", rng.below(100_000)))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = tokio::time::timeout(ANSWER_WITHIN, async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        match answer {
            Ok(Ok((StatusCode::OK, body))) if whole(&body, &path) => {
                traffic.answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Ok((status, body))) => traffic.error(format!(
                "{path}: {status} {:?}",
                String::from_utf8_lossy(&body)
            )),
            Ok(Err(e)) => {
                traffic.error(format!("{path}: {e}"));
                connection = None;
            }
            Err(_) => {
                traffic.error(format!("{path}: no whole answer within {ANSWER_WITHIN:?}"));
                connection = None;
            }
        }
    }
}

/// Whether `body` is a backend's whole answer to `path`.
fn whole(body: &[u8], path: &str) -> bool {
    let body = String::from_utf8_lossy(body);
    let first = body.lines().next().unwrap_or("");
    first.starts_with('b') && first.ends_with(&format!(" {path}")) && body.ends_with("\nend\n")
}

async fn connect(
    proxy: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}
