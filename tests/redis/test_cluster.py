"""Cache, RateLimiter and TokenProvider on a local 3-master Redis Cluster (skipped when one cannot start)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

import resilient as rs
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock
from tests.redis.conftest import wait_until

pytestmark = pytest.mark.redis


def _cluster_ok(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        info = client.cluster("info")
        return isinstance(info, dict) and info.get("cluster_state") == "ok"
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster_port() -> Iterator[int]:
    """Three cluster-enabled redis-servers joined by ``redis-cli --cluster create``; the first one's port."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("a Redis Cluster needs redis-server and redis-cli on PATH")
    workdir = tempfile.mkdtemp(prefix="resilient-cluster-")
    ports = _cluster_ports(3)
    procs = []
    try:
        for port in ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", f"nodes-{port}.conf", "--save", "", "--appendonly", "no"]
            procs.append(
                subprocess.Popen([*args, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in ports:
            wait_until(lambda port=port: _answers(port), timeout=10)  # type: ignore[misc]
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            pytest.skip(f"redis-cli --cluster create failed: {created.stdout[-300:]}{created.stderr[-300:]}")
        wait_until(lambda: all(_cluster_ok(p) for p in ports), timeout=30)
        yield ports[0]
    except AssertionError as exc:
        pytest.skip(f"the local Redis Cluster did not come up: {exc}")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(n: int) -> list[int]:
    """``n`` free ports whose cluster bus ports (+10000) are free too (so below 55536)."""
    rng = random.Random()
    ports: list[int] = []
    for _ in range(1000):
        port = rng.randrange(20000, 45000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
            if len(ports) == n:
                return ports
    pytest.skip("no free ports for a local Redis Cluster")


def _answers(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture
def cluster(cluster_port: int) -> Iterator[redis.cluster.RedisCluster]:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster_port, socket_timeout=2)
    try:
        yield client
    finally:
        client.close()


def test_a_cache_on_a_cluster_coalesces_and_hits(cluster: redis.cluster.RedisCluster) -> None:
    """Keys spread over the 3 masters; each entry's keys share a slot (the script runs); hits cost no origin call."""
    store = RedisStore(cluster, prefix="cluster-test:", timeout=2.0)
    calls: list[int] = []
    cache = rs.Cache(ttl=60, store=store, key="item:{n}")

    @cache
    def value(n: int) -> str:
        calls.append(n)
        return f"v{n}"

    try:
        assert [value(n) for n in range(30)] == [f"v{n}" for n in range(30)]
        assert [value(n) for n in range(30)] == [f"v{n}" for n in range(30)]
        assert calls == list(range(30))
        node_of: Any = cluster.get_node_from_key
        nodes = {node_of(f"cluster-test:{{item:{n}}}:v").name for n in range(30)}
        assert len(nodes) == 3  # the entries really are spread over the masters
        assert cache.stats()["store_errors"] == 0
    finally:
        store.close()


async def test_an_async_cache_on_a_cluster(cluster_port: int) -> None:
    """The asyncio Cluster client serves the async twins."""
    aclient = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster_port)
    store = RedisStore(aclient, prefix="cluster-async:", timeout=2.0)
    calls: list[int] = []
    cache = rs.Cache(ttl=60, store=store, key="item:{n}")

    @cache
    async def value(n: int) -> str:
        calls.append(n)
        return f"v{n}"

    try:
        assert [await value(n) for n in range(10)] == [f"v{n}" for n in range(10)]
        assert [await value(n) for n in range(10)] == [f"v{n}" for n in range(10)]
        assert calls == list(range(10))
    finally:
        await store.aclose()
        await aclient.aclose()


def test_rate_limiters_share_one_bucket_on_a_cluster(cluster: redis.cluster.RedisCluster) -> None:
    """Two limiters on the cluster admit burst calls between them."""
    clock = FakeClock()
    members = [
        rs.RateLimiter(5, burst=5, store=RedisStore(cluster, prefix="cluster-rl:", timeout=2.0), key="api", clock=clock)
        for _ in range(2)
    ]

    def admitted(limiter: rs.RateLimiter) -> bool:
        try:
            limiter.call(lambda: None)
        except rs.RateLimitedError:
            return False
        return True

    assert sum(admitted(members[i % 2]) for i in range(10)) == 5


def test_token_providers_share_one_token_on_a_cluster(cluster: redis.cluster.RedisCluster) -> None:
    """A second provider reads the token the first one fetched and stored in the cluster."""
    clock = FakeClock()
    fetches: list[int] = []

    def fetch() -> rs.Token:
        fetches.append(1)
        return rs.Token(f"secret-{len(fetches)}", clock.time() + 3600)

    members: list[Any] = [
        rs.TokenProvider(fetch, store=RedisStore(cluster, prefix="cluster-tok:", timeout=2.0), key="auth", clock=clock)
        for _ in range(2)
    ]
    assert [m.get() for m in members] == ["secret-1", "secret-1"]
    assert len(fetches) == 1
