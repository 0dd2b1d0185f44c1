"""Process pools that are safe to start after torch has run.

A forked child inherits the parent's OpenMP thread pool in a broken state, so a pool forked after any torch
op can crash its workers. Pools here use the ``forkserver`` start method instead: workers fork from a clean
server process that has only imported the modules they need.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

_PRELOAD = ["tinyact.data.video", "tinyact.data.synth.generator"]


def worker_count(requested: int = 0) -> int:
    """``requested`` workers, or one per CPU core when 0."""
    return requested if requested > 0 else (os.cpu_count() or 1)


def _one_thread_per_worker() -> None:
    # The pool already uses the cores; torch's own threads in every worker would only oversubscribe them.
    import torch

    torch.set_num_threads(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` single-threaded processes started through a fork server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_one_thread_per_worker)


def run_bounded(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int, on_result: Callable[[Any], None]) -> None:
    """``on_result(fn(job))`` for every job, in this process when ``workers`` is 1, else in a pool that keeps at
    most ``2 × workers`` jobs in flight so memory stays flat however many jobs there are (results arrive in
    completion order)."""
    if workers == 1:
        for job in jobs:
            on_result(fn(job))
        return
    with process_pool(workers) as pool:
        pending: set = set()
        for job in jobs:
            pending.add(pool.submit(fn, job))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    on_result(future.result())
        for future in pending:
            on_result(future.result())

