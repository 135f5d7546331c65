"""The shared token bucket: one atomic Lua script, one bucket for every process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resilient.stores.redis import RedisStore

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0


def test_bucket_spends_its_burst_then_says_how_long_to_wait(store: RedisStore) -> None:
    """A full bucket gives `burst` tokens, then answers the seconds until the next one."""
    waits = [store.take("api", rate=2, burst=3, now=NOW) for _ in range(4)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.5)]
    assert store.take("api", rate=2, burst=3, now=NOW + 0.5) == 0.0
    assert store.take("api", rate=2, burst=3, now=NOW + 0.5, tokens=2) == pytest.approx(1.0)


def test_bucket_never_refills_beyond_burst_nor_backwards(store: RedisStore) -> None:
    """Long idleness refills at most `burst`; a `now` behind the last one refills nothing."""
    store.take("api", rate=10, burst=2, now=NOW)
    assert [store.take("api", rate=10, burst=2, now=NOW + 3600) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]
    assert store.take("api", rate=10, burst=2, now=NOW) == pytest.approx(0.1)


async def test_async_bucket_is_the_same_bucket(store: RedisStore, aclient: object) -> None:
    """The async twin takes from the bucket the sync form uses."""
    paired = RedisStore(store._client, aclient=aclient)
    assert await paired.atake("api", rate=1, burst=1, now=NOW) == 0.0
    assert paired.take("api", rate=1, burst=1, now=NOW) == pytest.approx(1.0)


def test_more_tokens_than_the_burst_never_come(store: RedisStore) -> None:
    """Asking for more tokens than the bucket can ever hold answers an infinite wait, as in process."""
    assert store.take("api", rate=1, burst=0.5, now=NOW) == math.inf
    assert store.take("api", rate=1, burst=2, now=NOW, tokens=3) == math.inf
    with pytest.raises(ValueError, match="rate"):
        store.take("api", rate=0, burst=2, now=NOW)


TAKER = textwrap.dedent(
    """
    import sys, time
    import redis
    from resilient.stores.redis import RedisStore
    store = RedisStore(redis.Redis.from_url(sys.argv[1]))
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    got = sum(store.take("shared", rate=0.001, burst=50, now=time.time()) == 0.0 for _ in range(40))
    print(got, flush=True)
    """
)


def test_two_processes_share_one_bucket_exactly(redis_url: str) -> None:
    """Two processes racing on one bucket of 50 get exactly 50 tokens between them."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, redis_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        counts = [int(p.communicate(timeout=30)[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sum(counts) == 50
    assert all(c > 0 for c in counts)


def test_a_bucket_that_takes_ages_to_refill_still_works(store: RedisStore) -> None:
    """A huge burst over a tiny rate does not overflow the bucket's expiry."""
    assert store.take("slow", rate=1e-9, burst=1e9, now=NOW) == 0.0


def test_calls_exactly_one_token_apart_are_all_allowed_on_the_wall_clock(store: RedisStore) -> None:
    """RateLimiter(10, burst=1) on the Redis bucket, calls 1/rate apart near epoch 1.7e9: none is refused."""
    import resilient as rs
    from resilient.testing import FakeClock

    clock = FakeClock()
    limiter = rs.RateLimiter(10, burst=1, store=store, key="exact", clock=clock)
    refused = 0
    for _ in range(100):
        try:
            limiter.call(lambda: None)
        except rs.RateLimitedError:
            refused += 1
        clock.advance(0.1)
    assert refused == 0
