//! The tracker follows pipelined requests however their bytes are split.

use super::*;

/// Feed `stream` cut into pieces of `size` bytes; the verdicts in order.
fn verdicts_of(stream: &[u8], size: usize) -> Vec<Arc<Verdict>> {
    let verdicts = Arc::new(Verdicts::default());
    let mut tracker = Tracker::new(64 * 1024, Arc::clone(&verdicts));
    for piece in stream.chunks(size) {
        tracker.feed(piece);
    }
    std::iter::from_fn(|| verdicts.take().ok()).collect()
}

/// The verdicts as `ok`, `ok+last`, `body!`, or the head's error, for every
/// way of cutting the stream.
fn summary(stream: &[u8]) -> Vec<String> {
    let whole = describe(&verdicts_of(stream, stream.len()));
    for size in 1..stream.len() {
        assert_eq!(
            describe(&verdicts_of(stream, size)),
            whole,
            "cut every {size} bytes"
        );
    }
    whole
}

fn describe(verdicts: &[Arc<Verdict>]) -> Vec<String> {
    verdicts
        .iter()
        .map(|v| match v.head() {
            Err(e) => format!("{e:?}"),
            Ok(()) if v.body_malformed() => "body!".into(),
            Ok(()) if v.last() => "ok+last".into(),
            Ok(()) => "ok".into(),
        })
        .collect()
}

#[test]
fn every_pipelined_head_gets_a_verdict_however_the_bytes_are_cut() {
    let stream = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: a\r\n\r\n\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(summary(stream), ["ok", "ok", "ok", "ok"]);
}

#[test]
fn a_smuggled_head_behind_a_good_one_is_caught() {
    let stream = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /c HTTP/1.1\r\nHost: a\r\n\r\n";
    // Nothing after the refused head is followed (no verdict for /c: it is refused too).
    assert_eq!(summary(stream), ["ok", "LengthAndChunked"]);
}

#[test]
fn a_body_that_hides_a_request_is_skipped_as_a_body() {
    // The "request" inside the Content-Length body is data, not a head.
    let inner = b"GET /inner HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    let mut stream = format!(
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    stream.extend_from_slice(inner);
    stream.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(summary(&stream), ["ok", "ok"]);
}

#[test]
fn bad_chunks_mark_the_body_and_stop_the_tracking() {
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"0\r\nX: 1\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut stream =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        let verdicts = verdicts_of(&stream, stream.len());
        assert_eq!(
            describe(&verdicts),
            ["body!"],
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(verdicts[0].last());
    }
}

#[test]
fn an_upgrade_ends_the_tracking_and_closes_after_its_answer() {
    let stream =
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\
GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(summary(stream), ["ok+last"]);
}

#[test]
fn bare_line_feeds_between_requests_are_refused() {
    let stream = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    let verdicts = verdicts_of(stream, stream.len());
    assert_eq!(describe(&verdicts), ["ok+last"]);
}

#[test]
fn an_oversized_head_stops_the_tracking() {
    let verdicts = Arc::new(Verdicts::default());
    let mut tracker = Tracker::new(64, Arc::clone(&verdicts));
    tracker.feed(&[b'a'; 100]);
    tracker.feed(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(verdicts.take().unwrap_err(), FramingError::Unchecked);
}
