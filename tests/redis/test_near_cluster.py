"""The near cache on a local 3-master Redis Cluster: a write on any node drops the copies held elsewhere."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.redis import RedisStore

pytestmark = pytest.mark.redis


def _cluster_ports(n: int) -> list[int]:
    """``n`` free ports whose cluster-bus ports (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[int]]:
    """A private 3-master cluster (no replicas) on free loopback ports; skipped without the binaries."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed for a local cluster")
    ports = _cluster_ports(3)
    workdir = tempfile.mkdtemp(prefix="resilient-cluster-")
    procs = []
    try:
        for port in ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", f"nodes-{port}.conf", "--save", "", "--appendonly", "no"]
            procs.append(subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            assert _wait_ping(cli, port), f"cluster node {port} did not start"
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run([cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True)
            if "cluster_state:ok" in info.stdout:
                break
            time.sleep(0.05)  # waiting for the cluster to agree, not for test logic
        else:
            pytest.fail("the local cluster did not reach cluster_state:ok")
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ping(cli: str, port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True)
        if out.stdout.strip() == "PONG":
            return True
        time.sleep(0.02)  # waiting for a child process to listen
    return False


def test_a_write_through_one_node_drops_the_copy_held_by_a_store_on_another(cluster: list[int]) -> None:
    """On a cluster, keys of every slot: the writer's PUBLISH reaches the other store's subscriber."""
    from redis.cluster import RedisCluster

    writer_client = RedisCluster(host="127.0.0.1", port=cluster[0])
    reader_client = RedisCluster(host="127.0.0.1", port=cluster[1])
    writer = RedisStore(writer_client, near=rs.NearCache())  # type: ignore[arg-type]  # hints omit Cluster
    reader = RedisStore(reader_client, near=rs.NearCache())  # type: ignore[arg-type]  # hints omit Cluster
    try:
        assert writer.near is not None and reader.near is not None
        assert writer.near.wait_live(10) and reader.near.wait_live(10)
        for key in ("a", "user:2", "zz", "product:41", "{odd}"):  # spread over the three masters
            now = time.time()
            writer.set(key, Entry("v1", now + 60, now + 120), now=now)
            for _ in range(50):  # the writer's own message may void the first read's copy; bounded
                reader.get(key)
                if reader.near_get(key) is not None:
                    break
                waiter = reader.watch(key)
                if waiter is not None:
                    waiter.wait(0.05)
                    waiter.close()
            assert reader.near_get(key) is not None
            waiter = reader.watch(key)
            assert waiter is not None
            writer.set(key, Entry("v2", now + 60, now + 120), now=now)
            assert waiter.wait(5), f"{key}: no message reached the other store"
            waiter.close()
            assert reader.near_get(key) is None
            assert reader.get(key).value == "v2"  # type: ignore[union-attr]
    finally:
        writer.close()
        reader.close()
        writer_client.close()
        reader_client.close()
