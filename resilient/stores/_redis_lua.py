"""The record format and Lua scripts of :class:`resilient.stores.redis.RedisStore`.

A record is one Redis string: ``b"R1 <expires_at> <stale_until> <delta>\\n" + payload``
(times as wall-clock epoch seconds, ``repr`` of a float; ``payload`` from the
serializer). One GET reads it all. Each script touches only keys of one entry,
which share a hash tag, so it runs on Redis Cluster too.
"""

from __future__ import annotations

import math

from .base import Entry

__all__ = ["MAX_TIME", "SCRIPTS", "bucket_args", "pack", "px", "unpack_header"]

_MAGIC = b"R1"
#: Times in a record beyond this (the year 5138) are not times: such a record does not decode.
MAX_TIME = 1e11


def pack(entry: Entry, payload: bytes) -> bytes:
    """The record holding ``entry`` whose value serialized to ``payload``."""
    return b"R1 %r %r %r\n%b" % (entry.expires_at, entry.stale_until, entry.delta, payload)


def unpack_header(data: bytes) -> tuple[float, float, float, bytes]:
    """``(expires_at, stale_until, delta, payload)`` of a record; ValueError if it is not one."""
    head, sep, payload = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 4 or parts[0] != _MAGIC:
        raise ValueError("not a resilient record")
    expires_at, stale_until, delta = float(parts[1]), float(parts[2]), float(parts[3])
    if not (0 <= expires_at <= stale_until <= MAX_TIME and 0 <= delta <= MAX_TIME):  # also refuses nan and inf
        raise ValueError("a resilient record with times out of range")
    return expires_at, stale_until, delta, payload


def px(seconds: float) -> int:
    """Milliseconds for a PX argument: ``seconds`` rounded up, at least 1."""
    return max(1, math.ceil(seconds * 1000))


# KEYS: entry, lease. ARGV: now, token, lease_ms.
# Returns {0, record} fresh; {1, record|false} lease granted (token); {2, record|false} refreshing elsewhere.
# Granting is idempotent: a retry of a lookup whose reply was lost finds its own token and gets the lease.
LOOKUP = """
local v = redis.call('GET', KEYS[1])
if v then
  local e = tonumber(string.match(v, '^R1 (%S+) '))
  if e and e > tonumber(ARGV[1]) then return {0, v} end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {1, v} end
if redis.call('GET', KEYS[2]) == ARGV[2] then return {1, v} end
return {2, v}
"""

# Every script that changes a record, or frees a lease, publishes on the store's channel (ARGV: channel,
# message; message = b"i" + key for a changed record, b"r" + key for a freed lease): near caches drop
# their copies and waiters wake (resilient.stores.near).

# KEYS: entry, lease. ARGV: token, record, ttl_ms, channel, message. Writes only while the lease is the
# token; releases it.
SET_LEASED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""

# KEYS: entry. ARGV: record, ttl_ms, channel, message. A write without a lease.
SET_PLAIN = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: entry, lease. ARGV: channel, message. Deletes both (voiding every lease).
INVALIDATE = """
local n = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
"""

# KEYS: lease. ARGV: token, channel, message. Deletes the lease only if it is still the token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: bucket. ARGV: rate, burst, now, tokens. Returns seconds to wait as a string (0 = taken).
# The bucket refills at `rate`/s up to `burst`; a `now` behind the stored one (clock skew) refills nothing.
# A take short only by float rounding succeeds: the slack is _machines.bucket.slack (same formula).
BUCKET = """
local rate, burst, now, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local t, ts = tonumber(b[1]), tonumber(b[2])
if not t then t, ts = burst, now end
if now > ts then t = math.min(burst, t + (now - ts) * rate); ts = now end
local wait = 0
local slack = 1e-9 * want + 1e-15 * math.abs(now) * rate
if t >= want - slack then t = math.max(0, t - want) else wait = (want - t) / rate end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', t), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil(burst / rate * 1000) + 1000, 1e13))
return string.format('%.17g', wait)
"""

SCRIPTS = {
    "lookup": LOOKUP,
    "set_leased": SET_LEASED,
    "set_plain": SET_PLAIN,
    "invalidate": INVALIDATE,
    "release": RELEASE,
    "bucket": BUCKET,
}


def bucket_args(rate: float, burst: float, now: float, tokens: float) -> tuple[float, ...]:
    """The bucket script's arguments, checked."""
    if not rate > 0 or not burst > 0 or not tokens > 0:
        raise ValueError(f"rate, burst and tokens must be > 0, got rate={rate!r} burst={burst!r} tokens={tokens!r}")
    return (rate, burst, now, tokens)
