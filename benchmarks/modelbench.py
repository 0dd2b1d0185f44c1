"""Model-latency helpers shared by ``benchmarks/encoder.py`` and ``benchmarks/peers.py``.

- :func:`pin_threads` fixes torch's intra-/inter-op threads (and ONNX Runtime reads the same number), so every
  row of a run uses the same cores;
- :func:`matmul_peak` measures the machine's fp32 matmul FLOP/s at that thread count: the yardstick for
  "% of peak" (a conv net cannot beat a large SGEMM on the same cores);
- :func:`latency` gives median and quartiles over ``runs`` timed calls after warm-up;
- :class:`RssPeak` samples the process's resident memory while a row runs.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


def pin_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (default: all cores) and one inter-op thread; returns the count."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)
    return threads


def matmul_peak(seconds: float = 1.0, n: int = 2048) -> float:
    """Best fp32 FLOP/s of ``n×n @ n×n`` over about ``seconds``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == 0.0:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


@dataclass
class Latency:
    median: float
    p25: float
    p75: float
    runs: int

    def ms(self) -> str:
        return f"{self.median * 1e3:.1f} ({self.p25 * 1e3:.1f}–{self.p75 * 1e3:.1f})"

    def as_dict(self) -> dict[str, float]:
        return {"median_ms": self.median * 1e3, "p25_ms": self.p25 * 1e3, "p75_ms": self.p75 * 1e3, "runs": self.runs}


def latency(fn: Callable[[], Any], runs: int, warmup: int = 2, budget_s: float | None = None) -> Latency:
    """Seconds per call: median and quartiles of ``runs`` calls after ``warmup`` untimed ones.

    ``budget_s`` caps the timed phase (at least 3 runs are kept); the number actually run is recorded.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < runs:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if budget_s is not None and len(times) >= 3 and time.perf_counter() - started > budget_s:
            break
    if len(times) == 1:
        return Latency(times[0], times[0], times[0], 1)
    q = statistics.quantiles(times, n=4, method="inclusive")
    return Latency(statistics.median(times), q[0], q[2], len(times))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """Context manager: peak resident set size (bytes) of this process while the block runs."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self.start = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPeak:
        self.start = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def load_info() -> dict[str, Any]:
    """Load average now (1/5/15 min) and the number of cores: results from a busy machine must say so."""
    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "cores": os.cpu_count()}
