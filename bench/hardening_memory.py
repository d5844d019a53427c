#!/usr/bin/env python3
"""Resident memory of `ferry serve` under the loads of issue 18, printed as figures.

    cargo build --release -p ferry
    python3 bench/hardening_memory.py target/release/ferry

On SQLite in a temporary folder, loopback only. Phases:
  1. 200 sign-ins at once with made-up names (one address);
  2. the largest webhook call allowed (server.max_entities_per_request = 50,000 tiny
     entities on an incoming used by 3 routes), with 20 small calls beside it;
  3. a 700,000-entity call (12.5 MB), which must be refused with 413.
For each: the answers by status, the peak resident memory (VmRSS sampled every 20 ms)
and the resident memory 3 s after.
"""
import collections, json, os, re, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

PORT = 18099
BASE = f"http://127.0.0.1:{PORT}"
CONFIG = f"""
[server]
listen = "127.0.0.1:{PORT}"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "archive"
publisher = {{ type = "file", path = "out/archive.ndjson" }}

[[routes]]
id = "one"
incoming = ["shop"]
outgoing = "archive"

[[routes]]
id = "two"
incoming = ["shop"]
outgoing = "archive"

[[routes]]
id = "three"
incoming = ["shop"]
outgoing = "archive"
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)


def request(method, path, body=None, headers=None, timeout=300):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def sign_in(name):
    status, headers, html = request("GET", "/login")
    cookie = re.search(r"ferry_login=([^;]+)", headers.get("Set-Cookie", "")).group(1)
    csrf = re.search(rb'name="csrf" value="([^"]+)"', html).group(1).decode()
    body = f"csrf={csrf}&next=%2Ftasks&user={name}&password=wrong-password".encode()
    status, _, _ = request("POST", "/login", body, {
        "Cookie": f"ferry_login={cookie}",
        "Content-Type": "application/x-www-form-urlencoded",
    })
    return status


def phase(pid, label, work):
    sampler = Sampler(pid)
    sampler.start()
    before = rss_kib(pid)
    started = time.time()
    result = work()
    took = time.time() - started
    sampler.running = False
    time.sleep(3)
    after = rss_kib(pid)
    print(f"{label}: {result}; {took:.1f} s; RSS before {before / 1024:.0f} MB, "
          f"peak {max(sampler.peak, after) / 1024:.0f} MB, 3 s after {after / 1024:.0f} MB")


def at_once(n, fn):
    answers = collections.Counter()
    lock = threading.Lock()

    def one(i):
        status = fn(i)
        with lock:
            answers[status] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(answers)


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/ferry")
    folder = tempfile.mkdtemp(prefix="ferry-mem-")
    config = os.path.join(folder, "ferry.toml")
    with open(config, "w") as f:
        f.write(f'[storage]\nurl = "sqlite://{folder}/ferry.db"\n' + CONFIG)
    made = subprocess.run([binary, "tokens", "create", "--config", config, "--role",
                           "operator", "--name", "bench"], capture_output=True, text=True, check=True)
    token = made.stdout.strip().splitlines()[-1].strip()
    server = subprocess.Popen([binary, "serve", "--config", config], cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        print(f"ferry at {binary}, SQLite, RSS at start {rss_kib(server.pid) / 1024:.0f} MB")
        phase(server.pid, "200 sign-ins at once, made-up names",
              lambda: at_once(200, lambda i: sign_in(f"made-up-{i}")))

        def large():
            body = "".join(f'{{"sku":"L-{i:06}"}}\n' for i in range(50_000)).encode()
            out = {}

            def big():
                out["large"] = request("POST", "/api/v1/webhooks/shop", body, auth)[0]
            t = threading.Thread(target=big)
            t.start()
            small = collections.Counter()
            for i in range(20):
                time.sleep(0.1)
                small[request("POST", "/api/v1/webhooks/shop", f'{{"sku":"S-{i}"}}\n'.encode(), auth)[0]] += 1
            t.join()
            return f"large call ({len(body) / 1e6:.1f} MB) {out['large']}, 20 small calls beside it {dict(small)}"
        phase(server.pid, "50,000 entities x 3 routes", large)

        def huge():
            body = "".join(f'{{"sku":"H{i:06}"}}\n' for i in range(700_000)).encode()
            status, _, answer = request("POST", "/api/v1/webhooks/shop", body, auth)
            return f"{len(body) / 1e6:.1f} MB -> {status} {json.loads(answer)['error']['code']}"
        phase(server.pid, "700,000 entities", huge)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
