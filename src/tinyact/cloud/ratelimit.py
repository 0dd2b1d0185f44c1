"""Per-device token buckets (in process memory).

Each process keeps its own buckets, so N replicas (or ``--workers N``) allow up to N × the configured rate
per device in the worst case; behind a load balancer that spreads one device's requests evenly each replica
sees 1/N of them, and the effective limit stays close to the configured one. The limit protects the service
from a runaway device; it is not a billing quota, so this trade-off (no shared state, no extra round trip) is
deliberate. See docs/CLOUD.md.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``allow(key)`` spends one token of ``key``'s bucket (``rate`` per second, at most ``burst``)."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """``(allowed, seconds until the next token)``; a rate of 0 means no limit."""
        if self.rate <= 0:
            return True, 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (1.0 - tokens) / self.rate
