"""RedisStore against bad keys, bad records, OOM, cancellation, other clients and large values."""

from __future__ import annotations

import asyncio
import builtins
import gc
import hashlib
import json
import resource
import sys
from typing import Any

import pytest
import redis
import redis.asyncio

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.redis import RedisStore
from resilient.testing import capture_events
from tests.conftest import gather_all

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
POISON = json.loads('"\\udcff"')  # a lone surrogate, as json.loads yields from user input


def counted_cache(store: RedisStore) -> tuple[Any, list[str]]:
    calls: list[str] = []
    cache = rs.Cache(ttl=600, store=store, key=lambda k: k)

    @cache
    def value(k: str) -> str:
        calls.append(k)
        return f"v:{k!a}"

    return value, calls


# -- per-call errors -------------------------------------------------------------


def test_a_key_that_cannot_be_encoded_is_cached_under_its_hash(store: RedisStore, client: redis.Redis) -> None:
    """A lone-surrogate key is hashed (surrogatepass) into a valid Redis key: cached like any other."""
    value, calls = counted_cache(store)
    with capture_events() as events:
        assert [value(POISON), value(POISON), value("a"), value("a")] == [f"v:{POISON!a}"] * 2 + ["v:'a'"] * 2
    assert calls == [POISON, "a"]
    assert "cache.store_error" not in [e["event"] for e in events]
    digest = hashlib.sha1(POISON.encode("utf-8", "surrogatepass")).hexdigest()
    assert client.exists(f"resilient:{{#{digest}}}:v")


def test_a_poison_key_fails_alone_and_the_other_keys_stay_on_redis(store: RedisStore, client: redis.Redis) -> None:
    """A key whose every store access errors (wrong type at its record) is served by the origin; others hit Redis."""
    client.hset("resilient:{poison}:v", "x", "y")  # every GET of this key answers WRONGTYPE
    value, calls = counted_cache(store)
    for k in ("a", "b"):
        value(k)
    with capture_events() as events:
        for _ in range(5):
            assert value("poison") == "v:'poison'"  # from the origin, then from the in-process fallback
            assert value("a") == "v:'a'"
            assert value("b") == "v:'b'"
    assert calls.count("a") == calls.count("b") == 1  # never left Redis
    hits = [e for e in events if e["event"] == "cache.miss" and e["key"] in ("a", "b")]
    assert hits == []
    errors = [e for e in events if e["event"] == "cache.store_error"]
    assert errors and all(e["key"] == "poison" and e["call_only"] for e in errors)
    assert store.available


def test_oom_on_writes_fails_those_calls_alone(store: RedisStore, client: redis.Redis) -> None:
    """Redis over maxmemory (noeviction): cold keys come from the origin, warm keys still hit Redis."""
    value, calls = counted_cache(store)
    value("warm")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)  # every write is refused with OOM from now on
    try:
        for _ in range(3):
            assert value("warm") == "v:'warm'"
            assert value("cold") == "v:'cold'"
        assert calls.count("warm") == 1  # still read from Redis
        assert calls.count("cold") == 1  # its lookup refused (OOM): from the origin, then the in-process fallback
        assert not client.exists("resilient:{cold}:v")
        assert store.available
    finally:
        client.config_set("maxmemory", 0)


# -- leases and cancellation -------------------------------------------------------


async def test_a_caller_cancelled_during_the_lease_lookup_leaves_no_lease(aclient: Any, client: Any) -> None:
    """Cancelled while its lookup is in flight (the lease may be granted), the caller gives the lease back."""
    # A generous store timeout: this is about cancellation. With the default 0.25 s, a release
    # slowed past it on a loaded box rests the store, and the next lookup is (rightly) refused.
    astore = RedisStore(aclient, timeout=5.0)
    cancelled = 0
    for steps in range(40):  # cancel after 0, 1, 2 ... loop steps: before, while and after the request is out
        client.delete("resilient:{k}:l")
        task = asyncio.ensure_future(astore.alookup("k", now=NOW, lease_ttl=30))
        for _ in range(steps % 8):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        await gather_all(*list(astore._cleanups))
        if task.cancelled():
            cancelled += 1
            assert client.get("resilient:{k}:l") is None
        else:  # it finished first: its caller holds the lease, as it should, and gives it back
            lease = task.result().lease
            assert lease is not None
            await astore.arelease("k", lease)
    assert cancelled >= 5
    found = await astore.alookup("k", now=NOW, lease_ttl=30)
    assert found.lease is not None  # the next caller is not blocked


async def test_a_cache_call_cut_by_a_timeout_does_not_block_the_next_caller(aclient: Any) -> None:
    """rs.Timeout ending a caller during its lookup (or its fetch) leaves the next caller unblocked."""
    store = RedisStore(aclient, timeout=5.0)
    cache = rs.Cache(ttl=60, store=store, key=lambda: "slow", lock_wait=10)
    release = asyncio.Event()

    @rs.Timeout(0.05)
    @cache
    async def slow() -> str:
        await release.wait()
        return "v"

    @cache
    async def fast() -> str:
        return "v2"

    with pytest.raises(rs.TimeoutExceeded):
        await slow()
    await gather_all(*list(store._cleanups))
    got = await asyncio.wait_for(fast(), timeout=5)  # not 10 s of lock_wait: the lease was released
    assert got == "v2"


# -- records and keys ----------------------------------------------------------------


@pytest.mark.parametrize("expires", ["inf", "1e308", "nan", "1e12"])
def test_a_record_with_an_absurd_expiry_does_not_decode(store: RedisStore, client: redis.Redis, expires: str) -> None:
    """expires_at of inf, 1e308, nan or past the year 5000 is no record (a miss), not a value served forever."""
    client.set("resilient:{k}:v", f'R1 {expires} {expires} 0.0\n"v"'.encode())
    with capture_events() as events:
        assert store.get("k") is None
    assert "cache.decode_error" in [e["event"] for e in events]


def test_hashed_keys_cannot_collide_with_plain_ones(store: RedisStore) -> None:
    """A key spelled like another key's hash ('#' + sha1) is itself hashed: the two keys stay apart."""
    braced = "a{b}"
    spelled = "#" + hashlib.sha1(braced.encode()).hexdigest()
    assert store._tag(braced) != store._tag(spelled)
    store.set(braced, Entry("braced", NOW + 60, NOW + 120), now=NOW)
    store.set(spelled, Entry("spelled", NOW + 60, NOW + 120), now=NOW)
    assert store.get(braced).value == "braced"  # type: ignore[union-attr]
    assert store.get(spelled).value == "spelled"  # type: ignore[union-attr]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


@pytest.mark.slow
def test_reading_a_thousand_large_records_keeps_memory_bounded(client: redis.Redis) -> None:
    """1,024 records of 256 KB read once each: RSS grows by less than 64 MB with the default memo_bytes."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads RSS from /proc")
    store = RedisStore(client, timeout=5.0)
    payload = json.dumps("x" * (256 * 1024 - 2)).encode()
    pipe = client.pipeline(transaction=False)
    for i in range(1024):
        pipe.set(f"resilient:{{big{i}}}:v", b"R1 %r %r 0.0\n%b" % (NOW + 60, NOW + 120, payload))
    pipe.execute()
    gc.collect()
    before = _rss_mb()
    for i in range(1024):
        assert store.get(f"big{i}") is not None
    gc.collect()
    grown = _rss_mb() - before
    print(f"\nRSS grew {grown:.1f} MB reading 1,024 x 256 KB records; memo holds {len(store._memo)} records")
    assert grown < 64
    assert store._memo.weight <= 32 * 1024 * 1024


# -- clients ---------------------------------------------------------------------------


def test_a_valkey_client_is_accepted(redis_url: str) -> None:
    """valkey-py clients (sync and asyncio) work as redis-py ones do: duck-typed, never isinstance."""
    pytest.importorskip("valkey")
    import valkey
    import valkey.asyncio

    sync = valkey.Valkey.from_url(redis_url.replace("redis://", "valkey://"), socket_timeout=0.25)
    store = RedisStore(sync, timeout=5.0)
    try:
        assert store.set("k", Entry("v", NOW + 60, NOW + 120), now=NOW)
        assert store.get("k").value == "v"  # type: ignore[union-attr]
        assert store.lookup("cold", now=NOW, lease_ttl=1).lease is not None

        async def run() -> None:
            aclient = valkey.asyncio.Valkey.from_url(redis_url.replace("redis://", "valkey://"))
            astore = RedisStore(aclient, timeout=5.0)
            try:
                assert (await astore.aget("k")).value == "v"  # type: ignore[union-attr]
            finally:
                await aclient.aclose()

        asyncio.run(run())
    finally:
        store.close()
        sync.close()  # type: ignore[no-untyped-call]


def test_a_duck_typed_client_is_accepted(client: redis.Redis) -> None:
    """Any object with execute_command and register_script (a wrapper, say) is a client."""

    class Wrapper:
        def __init__(self, inner: redis.Redis) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    store = RedisStore(Wrapper(client), timeout=5.0)
    assert store.set("k", Entry("v", NOW + 60, NOW + 120), now=NOW)
    assert store.get("k").value == "v"  # type: ignore[union-attr]


def test_without_redis_py_the_store_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With redis-py missing, RedisStore and RedisStore.from_url raise ImportError naming resilient[redis]."""
    real_import = builtins.__import__

    def no_redis(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "redis" or name.startswith("redis."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    with pytest.raises(ImportError, match=r'pip install "resilient\[redis\]"'):
        RedisStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ImportError, match=r'pip install "resilient\[redis\]"'):
        RedisStore()
