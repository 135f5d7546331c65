"""The fleet under real Redis faults: 4 processes x 20 threads on one rs.Cache over a RedisStore.

Run: ``python -m benchmarks.faults`` (about 40 s; starts its own redis-server on
port 6414, or ``--port``, behind a small loopback TCP proxy that can add latency).

Each worker process runs 20 threads calling a cached function over 50 keys
(``ttl=2``, so misses keep coming; the origin takes 50 ms) through a
``RedisStore(timeout=0.25)`` on a bounded client. The parent injects, in turn:

* **kill**: SIGKILL redis-server, restart it on the same port 1 s later;
* **stop**: SIGSTOP for 3 s, then SIGCONT (a hung Redis);
* **latency**: the proxy delays every reply by 500 ms for 3 s;
* **maxmemory**: ``maxmemory 1`` (noeviction: every write refused) for 3 s.

Per fault it prints: caller errors (exceptions seen by callers during the
whole run are 0 if the degrade rule holds), the slowest call begun during the
fault, origin calls during the fault (and their ratio to the origin calls one
process alone would make, for the fleet), and the recovery time: for every
thread, the start of its last call not served on Redis, minus the moment the
fault ended (Redis answered the parent's PING, the delay was removed, maxmemory
was reset); the worst thread is reported.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROCESSES, THREADS, KEYS, ORIGIN, TTL, TIMEOUT = 4, 20, 50, 0.05, 2.0, 0.25
FAULTS = ("kill", "stop", "latency", "maxmemory")
GAP, HOLD = 3.0, 3.0


# -- the proxy: loopback TCP, optional delay on replies --------------------------------


class Proxy:
    """Forwards 127.0.0.1:<listen> to 127.0.0.1:<upstream>; ``delay`` seconds are added to every reply."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.delay = 0.0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=1)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while data := src.recv(65536):
                if replies and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


# -- the server -------------------------------------------------------------------------


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="resilient-faults-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not on PATH")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*args, "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.answered()

    def answered(self) -> float:
        """Wait until a PING is answered (directly, not through the proxy); the moment it was."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=0.1, socket_connect_timeout=0.1)
        try:
            for _ in range(2000):
                try:
                    client.ping()
                    return time.time()
                except redis.RedisError:
                    time.sleep(0.005)
            raise SystemExit("redis-server does not answer")
        finally:
            client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def config(self, *args: Any) -> None:
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.config_set(*args)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a worker process -------------------------------------------------------------------


def worker(port: int, out: str) -> None:
    """Call until ``<out>.stop`` exists (``<out>.ready`` once warm); write every call's record to ``out``."""
    import logging

    import redis
    import structlog
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    import resilient as rs
    from resilient.stores.base import Entry, Lookup

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    on_redis: contextvars.ContextVar[bool] = contextvars.ContextVar("on_redis", default=False)

    class Marking(rs.RedisStore):
        def get(self, key: str) -> Entry | None:
            entry = super().get(key)
            on_redis.set(True)
            return entry

        def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
            found = super().lookup(key, now=now, lease_ttl=lease_ttl)
            on_redis.set(True)
            return found

    client = redis.Redis(port=port, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0))
    store = Marking(client, timeout=TIMEOUT)
    cache = rs.Cache(ttl=TTL, store=store, key="k:{n}", lock_wait=1.0)
    origin_at: list[float] = []

    @cache
    def value(n: int) -> str:
        origin_at.append(time.time())
        time.sleep(ORIGIN)
        return f"v{n}"

    calls: list[list[tuple[float, float, bool, bool]]] = [[] for _ in range(THREADS)]
    stop = threading.Event()

    def watch() -> None:
        for n in range(KEYS):  # warm every key, then say so
            value(n)
        Path(out + ".ready").touch()
        while not os.path.exists(out + ".stop"):
            time.sleep(0.05)
        stop.set()

    def run(i: int) -> None:
        n = i
        while not stop.is_set():
            n = (n + 7) % KEYS
            on_redis.set(False)
            t0 = time.time()
            try:
                ok = value(n) == f"v{n}"
            except Exception:
                ok = False
            calls[i].append((t0, time.time(), on_redis.get(), ok))
            time.sleep(0.002)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    threading.Thread(target=watch, daemon=True).start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    Path(out).write_text(json.dumps({"calls": calls, "origin": origin_at}))


# -- the parent ---------------------------------------------------------------------------


def inject(fault: str, server: Server, proxy: Proxy) -> tuple[float, float]:
    """Cause ``fault``; (its start, its end: when Redis answered again), wall time."""
    began = time.time()
    if fault == "kill":
        server.kill()
        time.sleep(1.0)
        server.start()
    elif fault == "stop":
        server.signal(signal.SIGSTOP)
        time.sleep(HOLD)
        server.signal(signal.SIGCONT)
    elif fault == "latency":
        proxy.delay = 0.5
        time.sleep(HOLD)
        proxy.delay = 0.0
        return began, time.time()
    else:
        server.config("maxmemory-policy", "noeviction")
        server.config("maxmemory", 1)
        time.sleep(HOLD)
        server.config("maxmemory", 0)
        return began, time.time()
    return began, server.answered()


def report(fault: str, window: tuple[float, float], results: list[dict[str, Any]]) -> str:
    began, ended = window
    errors = slowest = origin = 0.0
    recovery = 0.0
    for r in results:
        origin += sum(1 for t in r["origin"] if began <= t < ended)
        for thread in r["calls"]:
            off = [c[0] for c in thread if not c[2] and began <= c[0] < ended + GAP - 0.5]  # before the next fault
            if off:
                recovery = max(recovery, max(off) - ended)
            for t0, t1, _, ok in thread:
                if began <= t0 < ended:
                    slowest = max(slowest, t1 - t0)
                    errors += 0 if ok else 1
    seconds = ended - began
    alone = KEYS * seconds / TTL  # about what one process alone refreshes in that time (one per key per ttl)
    return (
        f"{fault:<10} {int(errors):>7} {slowest * 1000:>10.0f} {int(origin):>8} ({origin / alone:4.1f}x one process) "
        f"{max(recovery, 0.0):>9.3f}"
    )


def print_timeline(results: list[dict[str, Any]], start: float) -> None:
    buckets: dict[float, list[int]] = {}
    for r in results:
        for thread in r["calls"]:
            for t0, _, on, _ in thread:
                b = buckets.setdefault(int((t0 - start) * 4) / 4, [0, 0])
                b[0] += 1
                b[1] += on
    print("  ".join(f"{t:+.2f}:{n}/{on}" for t, (n, on) in sorted(buckets.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6414)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ", ".join(FAULTS))
    parser.add_argument("--timeline", action="store_true", help="print calls / calls on Redis per 0.25 s")
    parser.add_argument("--worker", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(int(args.worker[0]), args.worker[1])
        return
    faults = [f for f in args.faults.split(",") if f]
    if not set(faults) <= set(FAULTS):
        raise SystemExit(f"--faults: choose among {', '.join(FAULTS)}, got {args.faults!r}")
    server = Server(args.port)
    server.start()
    proxy = Proxy(args.port)
    tmp = tempfile.mkdtemp(prefix="resilient-faults-out-")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outs = [os.path.join(tmp, f"w{i}.json") for i in range(PROCESSES)]
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.faults", "--worker", str(proxy.port), out], env=env)
        for out in outs
    ]
    windows: dict[str, tuple[float, float]] = {}
    try:
        deadline = time.monotonic() + 120
        while not all(os.path.exists(out + ".ready") for out in outs):
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not warm up within 120 s")
            time.sleep(0.05)
        time.sleep(GAP)
        for fault in faults:
            windows[fault] = inject(fault, server, proxy)
            time.sleep(GAP)
        for out in outs:
            Path(out + ".stop").touch()
        for p in procs:
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.stop()
    results = [json.loads(Path(out).read_text()) for out in outs]
    shutil.rmtree(tmp, ignore_errors=True)
    total = sum(len(t) for r in results for t in r["calls"])
    failed = sum(1 for r in results for t in r["calls"] for c in t if not c[3])
    print(f"{PROCESSES} processes x {THREADS} threads, {total} calls, {failed} caller errors in the whole run")
    print(f"{'fault':<10} {'errors':>7} {'max ms':>10} {'origin':>8} {'':>20} {'recovery s':>9}")
    for fault in faults:
        print(report(fault, windows[fault], results))
    if args.timeline:
        print_timeline(results, min(w[0] for w in windows.values()))


if __name__ == "__main__":
    main()
