"""Write buffering: absorb a write spike, feed the database at the rate it takes (in process or on Redis Streams)."""

from .buffer import WriteBuffer
from .redis_stream import RedisStreamQueue

__all__ = ["RedisStreamQueue", "WriteBuffer"]
