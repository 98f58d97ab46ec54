//! Health is evidence, shown with since when and why: `unknown` until a
//! check or a request says something, `up` after an answer, `down` after
//! failures, and down it stays (past its cool-down) until a trial request
//! or a check succeeds. The API, the route lookup and `/metrics` agree.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{dead_address, hosts_of, text, Backend, Proxy};
use http::{Response, StatusCode};
use serde_json::Value;

async fn backend_view(proxy: &Proxy, address: SocketAddr) -> Value {
    proxy.admin.backend(address).await
}

/// `(health, health_reason)` of `address`.
async fn health(proxy: &Proxy, address: SocketAddr) -> (String, String) {
    let view = backend_view(proxy, address).await;
    (
        view["health"].as_str().unwrap().to_owned(),
        view["health_reason"].as_str().unwrap().to_owned(),
    )
}

async fn metrics(proxy: &Proxy) -> String {
    proxy.admin.get("/metrics").await.text
}

#[tokio::test]
async fn a_working_backend_is_unknown_until_its_first_answer_then_up() {
    let backend = Backend::named("a").await;
    let proxy = Proxy::start(&[backend.addr]).await;
    let view = backend_view(&proxy, backend.addr).await;
    assert_eq!(view["health"], "unknown", "{view}");

    let (status, _) = proxy.get("www.example.com", "/").await;
    assert_eq!(status, StatusCode::OK);
    let answered = backend_view(&proxy, backend.addr).await;
    assert_eq!(answered["health"], "up", "evidence: {answered}");
    assert_eq!(view["health_reason"], "no check or request yet");
    let unknown_since = view["health_since"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(unknown_since).is_ok(),
        "{unknown_since}"
    );
    let view = answered;
    assert_eq!(
        (view["health"].as_str(), view["health_reason"].as_str()),
        (Some("up"), Some("request answered: status 200"))
    );
    let metrics = metrics(&proxy).await;
    let label = format!("backend=\"{}\"", backend.addr);
    for line in [
        format!("switchyard_backend_health{{{label},state=\"up\"}} 1"),
        format!("switchyard_backend_health{{{label},state=\"unknown\"}} 0"),
        format!(
            "switchyard_backend_health_reason{{{label},reason=\"request answered: status 200\"}} 1"
        ),
        format!("switchyard_backend_weight{{{label}}} 1"),
        format!("switchyard_backend_state{{{label},state=\"active\"}} 1"),
    ] {
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains(&format!(
        "switchyard_backend_health_since_seconds{{{label}}} "
    )));
}

#[tokio::test]
async fn a_backend_with_nothing_listening_stays_down_past_its_cooldown_until_a_trial_answers() {
    let dead = dead_address().await;
    let good = Backend::named("good").await;
    let members = [dead, good.addr];
    let cooldown = Duration::from_millis(500);
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 3;
        s.health.passive.cooldown = cooldown.as_secs_f64();
    })
    .await;
    let host = &hosts_of(dead, &members, 1)[0];
    for _ in 0..3 {
        let (status, body) = proxy.get(host, "/").await;
        assert_eq!(
            (status, &body[..4]),
            (StatusCode::OK, "good"),
            "failed over"
        );
    }
    let down = health(&proxy, dead).await;
    assert_eq!(down.0, "down");
    assert_eq!(down.1, "3 requests failed: connect refused");
    let since = backend_view(&proxy, dead).await["health_since"].clone();

    // The cool-down is over, and still nothing listens: it stays down.
    tokio::time::sleep(cooldown * 2).await;
    assert_eq!(
        health(&proxy, dead).await.0,
        "down",
        "no evidence, no change"
    );
    let route = proxy
        .admin
        .get(&format!("/api/v1/route?host={host}"))
        .await
        .json;
    assert_eq!(route["candidates"][0]["address"], dead.to_string());
    assert_eq!(route["candidates"][0]["health"], "down");
    assert_eq!(
        route["backend"]["address"],
        good.addr.to_string(),
        "{route}"
    );

    // The next request is its trial; it fails, and the client never notices.
    let (status, body) = proxy.get(host, "/").await;
    assert_eq!((status, &body[..4]), (StatusCode::OK, "good"));
    assert_eq!(
        health(&proxy, dead).await,
        (
            "down".into(),
            "trial request failed: connect refused".into()
        )
    );
    assert_eq!(backend_view(&proxy, dead).await["health_since"], since);

    // It comes back: the first trial after the next cool-down brings it up.
    let back = Backend::named_at("back", dead).await;
    let answered = {
        let mut answered = false;
        let deadline = tokio::time::Instant::now() + cooldown * 6;
        while !answered && tokio::time::Instant::now() < deadline {
            let (_, body) = proxy.get(host, "/").await;
            answered = body.starts_with("back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    };
    assert!(answered, "a trial reached it within a few cool-downs");
    assert_eq!(
        health(&proxy, dead).await,
        ("up".into(), "trial request answered: status 200".into())
    );
    drop(back);
}

#[tokio::test]
async fn failed_active_checks_say_why_and_a_passed_one_brings_it_back() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = std::sync::Arc::clone(&failing);
    let backend = Backend::with_handler(move |_| {
        let fail = flag.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut response = Response::new(text("health"));
            if fail {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            response
        }
    })
    .await;
    let proxy = Proxy::start_with(&[backend.addr], |s| {
        s.health.active.enabled = true;
        s.health.active.interval = 0.1;
        s.health.active.unhealthy_threshold = 2;
        s.health.passive.enabled = false;
    })
    .await;
    let seen = health_within(&proxy, backend.addr, "down", Duration::from_secs(5)).await;
    assert_eq!(seen, ("down".into(), "2 checks failed: status 503".into()));
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let seen = health_within(&proxy, backend.addr, "up", Duration::from_secs(5)).await;
    assert_eq!(seen, ("up".into(), "check passed: status 200".into()));
}

/// Poll until `address`'s health is `want` (or `within` passes); the last seen.
async fn health_within(
    proxy: &Proxy,
    address: SocketAddr,
    want: &str,
    within: Duration,
) -> (String, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = health(proxy, address).await;
        if seen.0 == want || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_trial_whose_client_walks_away_is_given_back_to_the_next_request() {
    let dead = dead_address().await;
    let good = Backend::named("good").await;
    let members = [dead, good.addr];
    let cooldown = Duration::from_millis(400);
    let proxy = Proxy::start_with(&members, |s| {
        s.health.passive.failures = 2;
        s.health.passive.cooldown = cooldown.as_secs_f64();
    })
    .await;
    let host = &hosts_of(dead, &members, 1)[0];
    for _ in 0..2 {
        proxy.get(host, "/").await;
    }
    assert_eq!(health(&proxy, dead).await.0, "down");
    let back = Backend::named_at("back", dead).await;
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;

    // An upload takes the trial, then its client walks away: no evidence.
    let mut upload = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!("POST /u HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\nabc");
    tokio::io::AsyncWriteExt::write_all(&mut upload, head.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(upload);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        health(&proxy, dead).await.0,
        "down",
        "no evidence either way"
    );

    // The next request is the trial at once, not a cool-down later.
    let (status, body) = proxy.get(host, "/").await;
    assert_eq!(
        (status, body.split(' ').next()),
        (StatusCode::OK, Some("back"))
    );
    assert_eq!(
        health(&proxy, dead).await,
        ("up".into(), "trial request answered: status 200".into())
    );
    drop(back);
}
