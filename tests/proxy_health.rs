//! Backends failing under traffic: a killed backend's keys fail over and
//! come back when it does; the keep-alive race costs no GET and duplicates
//! no POST; passive checks take out a failing backend without flapping.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{hosts_of, text, Backend, Proxy};
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// When an answer came, for which host, with which status and body.
type Answer = (Instant, String, StatusCode, String);

/// A backend answering `"<name> ..."` after `delay`, counting requests in flight.
async fn slow_named(name: &'static str, delay: Duration) -> (Backend, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&in_flight);
    let backend = Backend::with_handler(move |seen| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            counter.fetch_sub(1, Ordering::SeqCst);
            Response::new(text(format!("{name} {}", seen.uri)))
        }
    })
    .await;
    (backend, in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_backends_keys_fail_over_and_return_when_it_restarts() {
    kill_and_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_active_checks_alone_a_killed_backend_is_marked_down_within_two_intervals() {
    kill_and_restart(false).await;
}

/// Traffic over three backends; kill one, then restart it. Active checks
/// every second (2 failures to go down, 1 pass to come back); passive
/// checks on or off.
async fn kill_and_restart(passive: bool) {
    let delay = Duration::from_millis(50);
    let (a, a_in_flight) = slow_named("a", delay).await;
    let (b, _) = slow_named("b", delay).await;
    let (c, _) = slow_named("c", delay).await;
    let members = [a.addr, b.addr, c.addr];
    let proxy = Proxy::start_with(&members, |s| {
        s.health.active.enabled = true;
        s.health.active.interval = 1.0;
        s.health.active.timeout = 0.5;
        s.health.active.unhealthy_threshold = 2;
        s.health.active.healthy_threshold = 1;
        s.health.passive.enabled = passive;
    })
    .await;
    let a_hosts = hosts_of(a.addr, &members, 12);
    let mut hosts = a_hosts.clone();
    hosts.extend(hosts_of(b.addr, &members, 6));
    hosts.extend(hosts_of(c.addr, &members, 6));

    let log: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for t in 0..4 {
        let (hosts, log, stop, addr) = (
            hosts.clone(),
            Arc::clone(&log),
            Arc::clone(&stop),
            proxy.addr,
        );
        loops.push(tokio::spawn(async move {
            for i in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let host = &hosts[(i * 4 + t) % hosts.len()];
                let (status, body) = Proxy::get_at(addr, host, "/").await;
                log.lock()
                    .unwrap()
                    .push((Instant::now(), host.clone(), status, body));
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Kill it while it has requests in flight.
    assert!(
        common::eventually(Duration::from_secs(2), || a_in_flight
            .load(Ordering::SeqCst)
            > 0)
        .await
    );
    let in_flight_at_kill = a_in_flight.load(Ordering::SeqCst);
    let killed = Instant::now();
    a.kill();
    let marked_down = wait_for_health(&proxy, a.addr, "down", Duration::from_secs(6)).await;
    if !passive {
        // Two failed checks, at most one interval apart, plus the first wait.
        assert!(
            marked_down <= Duration::from_millis(2_600),
            "{marked_down:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Backend::named_at("a", a.addr).await;
    let restarted_at = Instant::now();
    let back = common::eventually(Duration::from_secs(6), || {
        log.lock().unwrap().iter().any(|(t, h, _, body)| {
            *t > restarted_at && a_hosts.contains(h) && body.starts_with("a ")
        })
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let log = log.lock().unwrap();
    let errors: Vec<_> = log
        .iter()
        .filter(|(_, _, s, _)| *s != StatusCode::OK)
        .collect();
    assert!(
        errors.len() <= in_flight_at_kill,
        "{} errors, but only {in_flight_at_kill} requests were in flight at the kill: {errors:?}",
        errors.len()
    );
    let first_failover = log
        .iter()
        .filter(|(t, h, s, body)| {
            *t > killed && a_hosts.contains(h) && *s == StatusCode::OK && !body.starts_with("a ")
        })
        .map(|(t, ..)| t.duration_since(killed))
        .min()
        .expect("a's keys were served by other backends");
    assert!(back, "a's keys returned to a after it restarted");
    let returned = log
        .iter()
        .filter(|(t, h, _, body)| {
            *t > restarted_at && a_hosts.contains(h) && body.starts_with("a ")
        })
        .map(|(t, ..)| t.duration_since(restarted_at))
        .min()
        .unwrap();
    println!(
        "MEASURE kill (passive checks {}): {} requests, {} errors ({in_flight_at_kill} in flight at the kill); \
         a's keys on the next candidate after {first_failover:?}; marked down after {marked_down:?}; \
         keys back {returned:?} after the restart",
        if passive { "on" } else { "off" },
        log.len(),
        errors.len()
    );
    drop(restarted);
}

/// Poll the admin API until `addr`'s health is `want`; returns how long it took.
async fn wait_for_health(
    proxy: &Proxy,
    addr: SocketAddr,
    want: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        let list = proxy.admin.get("/api/v1/backends").await;
        let health = list.json["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["address"] == addr.to_string())
            .map(|b| b["health"].as_str().unwrap_or("").to_owned());
        if health.as_deref() == Some(want) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} did not become {want} within {within:?}");
}

/// A raw HTTP/1.1 backend that answers with keep-alive but, on every other
/// reuse of a connection, closes it as the next request arrives without
/// answering: the keep-alive race, made deterministic. It records the
/// request lines it answered.
async fn racy_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&answered);
    let closes = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (record, closes) = (Arc::clone(&record), Arc::clone(&closes));
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                for served in 0.. {
                    let Some((line, length)) = read_head(&mut stream, &mut buffer).await else {
                        return;
                    };
                    if served > 0 && closes.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                        return; // the race: the request arrived, the connection closes
                    }
                    while buffer.len() < length {
                        let mut chunk = [0u8; 4096];
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    buffer.drain(..length);
                    record.lock().unwrap().push(line);
                    let reply =
                        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, answered)
}

/// Read one request head from `stream`; returns its request line and
/// `Content-Length`, leaving any body bytes in `buffer`.
async fn read_head(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, usize)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            buffer.drain(..end + 4);
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            return Some((head.lines().next().unwrap_or("").to_owned(), length));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn the_keep_alive_race_costs_no_get_and_never_duplicates_a_post() {
    let (backend, answered) = racy_backend().await;
    let proxy = Proxy::start(&[backend]).await;
    for i in 0..100 {
        let (status, body) = proxy.get("race.example", &format!("/get/{i}")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "GET {i}");
    }
    let mut posted_ok = Vec::new();
    for i in 0..40 {
        let request = http::Request::post(format!("/post/{i}"))
            .header("host", "race.example")
            .body(http_body_util::Full::new(bytes::Bytes::from("payload")))
            .unwrap();
        if common::send(proxy.addr, request).await.status() == StatusCode::OK {
            posted_ok.push(format!("POST /post/{i} HTTP/1.1"));
        }
    }
    let answered = answered.lock().unwrap().clone();
    let posts: Vec<&String> = answered.iter().filter(|l| l.starts_with("POST")).collect();
    let mut unique = posts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        posts.len(),
        "no POST reached the backend twice"
    );
    assert_eq!(
        posts.len(),
        posted_ok.len(),
        "every answered POST was answered to the client once"
    );
    let stats = proxy.admin.get("/api/v1/stats").await;
    let retries = stats.json["backends"][0]["retries"].as_u64().unwrap();
    assert!(retries > 0, "the race happened and GETs were resent");
    println!(
        "MEASURE keep-alive race: 100/100 GETs answered with {retries} resends; {} of 40 POSTs answered, none duplicated",
        posted_ok.len()
    );
}

#[tokio::test]
async fn passive_checks_take_out_a_failing_backend_but_not_for_one_error() {
    let failing = Backend::with_handler(|_| async {
        let mut response = Response::new(text("down"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
    })
    .await;
    let healthy = Backend::named("healthy").await;
    let members = [failing.addr, healthy.addr];
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 3;
        s.health.passive.cooldown = 30.0;
        s.health.passive.failure_statuses = vec![503];
    })
    .await;
    let host = &hosts_of(failing.addr, &members, 1)[0];
    for attempt in 1..=3 {
        let (status, _) = proxy.get(host, "/").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt} reaches the failing backend"
        );
    }
    let (status, body) = proxy.get(host, "/").await;
    assert_eq!(
        (status, body.split(' ').next()),
        (StatusCode::OK, Some("healthy")),
        "taken out after 3"
    );

    // One 503 among successes does not take a backend out.
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&flaky_calls);
    let flaky = Backend::with_handler(move |_| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = Response::new(text("flaky"));
            if n % 2 == 0 {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            response
        }
    })
    .await;
    let members = [flaky.addr, healthy.addr];
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 3;
        s.health.passive.failure_statuses = vec![503];
    })
    .await;
    let host = &hosts_of(flaky.addr, &members, 1)[0];
    for _ in 0..10 {
        proxy.get(host, "/").await;
    }
    assert_eq!(
        flaky_calls.load(Ordering::SeqCst),
        10,
        "alternating errors never took it out"
    );
}
