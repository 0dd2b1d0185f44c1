"""How long to wait before trying again: exponential backoff with jitter.

One formula for every retry in the package (an outbox clip the cloud did not take, a camera that is down), so
they all back off the same way.
"""

from __future__ import annotations

import random


def backoff_delay(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """The wait before attempt ``attempts + 1``: uniform in ``[d/2, d]`` where ``d = min(max_s, base_s·2^(n-1))``.

    The jitter spreads the retries of many devices after a cloud outage, so they do not all come back in the
    same second.

    Args:
        attempts: Failed attempts so far (1 for the first failure; 0 is treated as 1).
        base_s: The wait after the first failure, in seconds (before jitter).
        max_s: The longest wait, in seconds (before jitter).
        rng: Random source (tests pass a seeded one); the module's by default.

    Returns:
        The delay in seconds.
    """
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    return (rng or random).uniform(delay / 2, delay)
