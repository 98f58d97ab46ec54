//! Open-loop load at a fixed request rate, for latency percentiles that mean
//! something (Debian has no wrk2, and h2load's `--rate` is connections per
//! second). Used by `bench/run.sh`'s `rate` scenario.
//!
//! Each of `--connections` keep-alive connections sends on its own fixed
//! schedule (`rate / connections` per second, staggered). A request's
//! latency runs from when it was due, not from when it went out, if it went
//! out late because the previous response on its connection was late (so a
//! stall counts for every request it delayed, like wrk2); if the generator's
//! own timer woke late, it runs from the actual send.
//!
//! `cargo run --release --example fixed_rate -- --url http://127.0.0.1:19401/ --rate 20000`

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

struct Args {
    addr: String,
    path: String,
    host: String,
    rate: f64,
    connections: usize,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        path: "/".into(),
        host: "site1.example".into(),
        rate: 10_000.0,
        connections: 64,
        seconds: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => {
                let rest = value
                    .strip_prefix("http://")
                    .ok_or("--url must be http://")?;
                let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                args.addr = addr.to_owned();
                args.path = if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                };
            }
            "--host" => args.host = value,
            "--rate" => args.rate = number()?,
            "--connections" => args.connections = number()? as usize,
            "--seconds" => args.seconds = number()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.addr.is_empty() || args.rate <= 0.0 || args.connections == 0 {
        return Err("usage: fixed_rate --url http://host:port/path [--host H] [--rate N] [--connections N] [--seconds S]".into());
    }
    Ok(args)
}

/// One connection's latencies (µs) and failed requests.
async fn connection(args: &Args, first_due: Instant, end: Instant) -> (Vec<u32>, u64) {
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let Ok(stream) = tokio::net::TcpStream::connect(&args.addr).await else {
        return (latencies, 1);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return (latencies, 1);
    };
    tokio::spawn(conn);
    let mut due = first_due;
    while due < end {
        let start = if Instant::now() >= due {
            due
        } else {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        };
        let request = hyper::Request::get(args.path.as_str())
            .header("host", args.host.as_str())
            .body(Empty::new())
            .expect("valid request");
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let ok = response.status().is_success();
                ok && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        };
        if ok {
            latencies.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
        } else {
            errors += 1;
            if sender.ready().await.is_err() {
                break;
            }
        }
        due += interval;
    }
    (latencies, errors)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("fixed_rate: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let args = std::sync::Arc::new(args);
    let (latencies, errors, elapsed) = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(100);
        let end = start + Duration::from_secs_f64(args.seconds);
        let stagger = Duration::from_secs_f64(1.0 / args.rate);
        let tasks: Vec<_> = (0..args.connections)
            .map(|n| {
                let args = std::sync::Arc::clone(&args);
                tokio::spawn(
                    async move { connection(&args, start + stagger * n as u32, end).await },
                )
            })
            .collect();
        let (mut all, mut errors) = (Vec::new(), 0);
        for task in tasks {
            let (latencies, failed) = task.await.expect("connection task");
            all.extend(latencies);
            errors += failed;
        }
        (all, errors, start.elapsed())
    });
    let mut sorted = latencies;
    sorted.sort_unstable();
    println!(
        "requests {} errors {} rate {:.0}/s target {:.0}/s",
        sorted.len(),
        errors,
        sorted.len() as f64 / elapsed.as_secs_f64(),
        args.rate
    );
    println!(
        "latency_us p50 {} p90 {} p99 {} p99.9 {} max {}",
        percentile(&sorted, 50.0),
        percentile(&sorted, 90.0),
        percentile(&sorted, 99.0),
        percentile(&sorted, 99.9),
        sorted.last().copied().unwrap_or(0)
    );
}
