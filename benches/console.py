#!/usr/bin/env python3
"""The operator console's first load and its live feed's cost, against a running server.

    ROSTER_ADMIN_KEY=... python3 benches/console.py http://127.0.0.1:18300 PID

1. First load (cold: a new browser profile, nothing cached): drives Debian's headless
   Chromium through chromedriver's WebDriver HTTP interface, opens /admin, signs in with
   the operator key, and reads from the page the bytes of every file it loaded
   (Resource Timing's transferSize) and the time from navigation to the first live
   figure on the page.
2. The live feed's cost: the server's CPU time (utime + stime of PID, from /proc) over
   30 s with no operator socket, then with 10 sockets on /api/v1/admin/live reading a
   frame a second.

Only loopback; no package beyond the standard library.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BASE = sys.argv[1].rstrip("/")
PID = int(sys.argv[2])
KEY = os.environ["ROSTER_ADMIN_KEY"]
HOST, PORT = BASE.split("//")[1].split(":")
PORT = int(PORT)


def wd(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["value"]


def first_load():
    port = 9515 + os.getpid() % 1000
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp()
    try:
        for _ in range(100):
            try:
                wd(port, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        session = wd(port, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        wd(port, "POST", f"{s}/url", {"url": f"{BASE}/admin"})
        key = wd(port, "POST", f"{s}/element", {"using": "css selector", "value": "#key"})
        key_id = list(key.values())[0]
        wd(port, "POST", f"{s}/element/{key_id}/value", {"text": KEY})
        button = wd(port, "POST", f"{s}/element", {"using": "css selector", "value": "#sign-in-button"})
        wd(port, "POST", f"{s}/element/{list(button.values())[0]}/click", {})
        script = ("const t = document.getElementById('active-total').textContent;"
                  "if (!/^[0-9]+$/.test(t)) return null;"
                  "const nav = performance.getEntriesByType('navigation')[0];"
                  "const files = performance.getEntriesByType('resource');"
                  "return {ms: performance.now(), document: nav.transferSize,"
                  " files: files.map(f => [f.name, f.transferSize])};")
        found = None
        for _ in range(200):
            found = wd(port, "POST", f"{s}/execute/sync", {"script": script, "args": []})
            if found:
                break
            time.sleep(0.02)
        wd(port, "DELETE", s)
        return found
    finally:
        driver.terminate()
        driver.wait()


def cpu_seconds():
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_socket(stop, frames):
    s = socket.create_connection((HOST, PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /api/v1/admin/live HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {KEY}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            if s.recv(65536):
                frames.append(1)
        except socket.timeout:
            pass
    s.close()


def feed_cost(sockets, seconds=30):
    stop, frames, threads = threading.Event(), [], []
    for _ in range(sockets):
        t = threading.Thread(target=live_socket, args=(stop, frames))
        t.start()
        threads.append(t)
    time.sleep(2)
    c0, t0 = cpu_seconds(), time.time()
    time.sleep(seconds)
    used, wall = cpu_seconds() - c0, time.time() - t0
    stop.set()
    for t in threads:
        t.join()
    return used / wall, len(frames)


if __name__ == "__main__":
    load = first_load()
    total = load["document"] + sum(b for _, b in load["files"])
    print(f"first load: {len(load['files']) + 1} requests, {total} bytes transferred, "
          f"first live figure after {load['ms']:.0f} ms")
    for name, size in load["files"]:
        print(f"  {size:>7} {name}")
    idle, _ = feed_cost(0)
    busy, frames = feed_cost(10)
    print(f"server CPU: {idle * 100:.2f}% of a core with no operator socket, "
          f"{busy * 100:.2f}% with 10 live sockets ({frames} reads)")
