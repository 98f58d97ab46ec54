#!/usr/bin/env python3
"""RSS of proxy processes holding N idle keep-alive client connections.

Usage: idle-rss.py [--tls] N NAME=PORT:PID[,PID...] ...

--tls: HTTPS connections (TLS 1.3, SNI site1.example, certificate not
checked), opened one after another (handshake, request, response).

For each target: read the RSS (sum of the given processes and their
children), open N connections, send one request on each and read its
response (so the proxy has set up its per-connection state and returned
to idle), wait a moment, read the RSS again, close everything. Prints
the RSS before/after and the growth per connection (KiB).
"""
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: site1.example\r\n\r\n"


def rss_kib(pids):
    total = 0
    for pid in all_pids(pids):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def all_pids(pids):
    out = list(pids)
    for pid in pids:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        out += [int(c) for c in children.stdout.split()]
    return out


def open_idle(port, n):
    """n connections, each with one answered request (responses read until the
    end of the headers plus a short body; the benchmark backend's body is small)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(REQUEST)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
    pending, deadline = n, time.time() + 60
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            chunk = key.fileobj.recv(65536)
            key.data.extend(chunk)
            if not chunk or b"\r\n\r\n" in key.data:
                sel.unregister(key.fileobj)
                pending -= 1
    if pending:
        raise SystemExit(f"port {port}: {pending} of {n} connections got no response")
    return socks


def open_idle_tls(port, n):
    """n TLS connections, each with one answered request, opened in turn."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    socks = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port))
        s = context.wrap_socket(raw, server_hostname="site1.example")
        s.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit(f"port {port}: closed before answering")
            data += chunk
        socks.append(s)
    return socks


def main():
    global open_idle
    args = sys.argv[1:]
    if args and args[0] == "--tls":
        args = args[1:]
        open_idle = open_idle_tls
    sys.argv = [sys.argv[0]] + args
    n = int(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"| target | RSS before KiB | RSS with {n} idle KiB | KiB per idle connection |")
    print("| --- | ---: | ---: | ---: |")
    for spec in sys.argv[2:]:
        name, rest = spec.split("=")
        port, pids = rest.split(":")
        pids = [int(p) for p in pids.split(",")]
        before = rss_kib(pids)
        socks = open_idle(int(port), n)
        time.sleep(1)
        after = rss_kib(pids)
        for s in socks:
            s.close()
        print(f"| {name} | {before} | {after} | {(after - before) / n:.2f} |", flush=True)
        time.sleep(2)


if __name__ == "__main__":
    main()
