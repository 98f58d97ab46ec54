//! Raw peers for the smuggling tests: a backend that records the exact bytes
//! it receives, an HTTP/1 reader of pipelined answers, and an HTTP/2 client
//! that writes frames by hand (so that it can send what real clients refuse
//! to: connection headers, misplaced pseudo-headers, lying lengths).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Read one head, byte by byte, up to and including its blank line (no
/// byte past it is consumed); `None` if the peer closes or fails first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// How the recording backend answers one request it parsed.
pub type Reply = Arc<dyn Fn(&ParsedRequest) -> Vec<u8> + Send + Sync>;

/// A request as the recorder split it out of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    pub method: String,
    pub target: String,
    /// Lowercased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The exact bytes of this request.
    pub raw: Vec<u8>,
}

impl ParsedRequest {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A backend on 127.0.0.1:0 that records every byte received and answers
/// each request it can parse. Bytes it cannot parse as well-formed requests
/// (exactly one framing header, complete) stay in `leftover`.
pub struct Recorder {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<ParsedRequest>>>,
    pub leftover: Arc<Mutex<Vec<u8>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Recorder {
    /// Answers `200` with body `ok` to everything.
    pub async fn start() -> Recorder {
        Recorder::answering(Arc::new(|_| {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        }))
        .await
    }

    pub async fn answering(reply: Reply) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<ParsedRequest>>> = Arc::default();
        let leftover: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (seen, rest) = (Arc::clone(&requests), Arc::clone(&leftover));
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (seen, rest, reply) =
                    (Arc::clone(&seen), Arc::clone(&rest), Arc::clone(&reply));
                tokio::spawn(serve(stream, seen, rest, reply));
            }
        });
        Recorder {
            addr,
            requests,
            leftover,
            accepted,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<ParsedRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn leftover(&self) -> Vec<u8> {
        self.leftover.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<ParsedRequest>>>,
    rest: Arc<Mutex<Vec<u8>>>,
    reply: Reply,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while let Some((request, used)) = parse_request(&buf) {
            buf.drain(..used);
            let answer = reply(&request);
            seen.lock().unwrap().push(request);
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    rest.lock().unwrap().extend_from_slice(&buf);
}

/// One complete, well-framed request at the start of `buf`, and its length.
pub fn parse_request(buf: &[u8]) -> Option<(ParsedRequest, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = req.parse(buf).ok()? else {
        return None;
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let codings: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .map(|(_, v)| v.as_str())
        .collect();
    let (body, used) = match (lengths.as_slice(), codings.as_slice()) {
        ([], []) => (Vec::new(), head_len),
        ([len], []) => {
            let len: usize = len.parse().ok()?;
            let end = head_len.checked_add(len)?;
            (buf.get(head_len..end)?.to_vec(), end)
        }
        ([], [te]) if te.eq_ignore_ascii_case("chunked") => {
            dechunk(&buf[head_len..]).map(|(body, used)| (body, head_len + used))?
        }
        _ => return None, // ambiguous: not a well-formed request
    };
    Some((
        ParsedRequest {
            method: req.method?.to_owned(),
            target: req.path?.to_owned(),
            headers,
            body,
            raw: buf[..used].to_vec(),
        },
        used,
    ))
}

fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        body.extend_from_slice(buf.get(at..at + size)?);
        at += size;
        if buf.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// The statuses of the HTTP/1 responses in `answer`, in order.
pub fn statuses(answer: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < answer.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = res.parse(&answer[at..]) else {
            break;
        };
        out.push(res.code.unwrap_or(0));
        let length = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        at += head + length;
    }
    out
}

/// Write each of `writes` (pausing `pause` between them) on one connection
/// and read until the proxy closes it or `within` passes.
pub async fn exchange(
    addr: SocketAddr,
    writes: &[&[u8]],
    pause: Duration,
    within: Duration,
) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writes: Vec<Vec<u8>> = writes.iter().map(|w| w.to_vec()).collect();
    let writing = tokio::spawn(async move {
        for (i, bytes) in writes.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            if writer.write_all(bytes).await.is_err() {
                break;
            }
        }
        // Keep the write side open: a half-close would end HTTP/1 early.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let deadline = tokio::time::Instant::now() + within;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    writing.abort();
    answer
}
