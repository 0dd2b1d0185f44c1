"""Which C allocator serves the process's tensors, and a switch that lets glibc reuse large freed ones.

PyTorch's CPU tensors come from ``malloc``. glibc serves every allocation above its mmap threshold (32 MiB at
most, by default) with fresh pages from ``mmap`` and unmaps them on ``free``, so an encoder whose input batch or
activations are that large pays a page fault and a kernel page-zeroing for every 4 KiB of them on every call.
What reusing them saves, by batch size and runtime: ``benchmarks/peers.py --malloc default|retain``, results in
``docs/BENCHMARKS.md``.

:func:`retain_freed_buffers` raises glibc's mmap and trim thresholds (``mallopt``) so those buffers are recycled
inside the heap. Two limits:

- it works for allocations made by the main thread (the main arena grows with ``brk``); glibc caps every other
  thread's heap at 64 MiB, so large buffers allocated in a worker thread are still mapped and unmapped per call;
- the process keeps its peak heap instead of returning it to the OS.

The portable fix, which also covers worker threads (the edge agent encodes in its schedule thread), is the one
PyTorch's CPU performance guide gives: preload jemalloc with decay disabled::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
    MALLOC_CONF=oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
    tinyact edge run ...

(jemalloc with its default decay reuses nothing at these sizes and was slower than glibc in the same test.)
:func:`allocator_name` reports what is in effect, so a benchmark can record it next to its numbers.
"""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

#: ``mallopt`` parameter numbers from glibc's ``malloc.h``.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_retained = False


def _preloaded_allocator() -> str | None:
    """``jemalloc`` / ``tcmalloc`` when one is mapped into this process (``LD_PRELOAD``), else None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    return next((name for name in ("jemalloc", "tcmalloc") if f"lib{name}" in maps), None)


def _plain_glibc() -> bool:
    """glibc's own malloc serves this process (no jemalloc/tcmalloc preloaded): the only case ``mallopt`` and
    ``malloc_trim`` act on."""
    return _preloaded_allocator() is None and platform.libc_ver()[0] == "glibc"


def allocator_name() -> str:
    """The allocator serving this process: ``jemalloc``, ``tcmalloc``, ``glibc-retain`` (after
    :func:`retain_freed_buffers`), ``glibc`` or the C library's name."""
    preloaded = _preloaded_allocator()
    if preloaded:
        return preloaded
    libc = platform.libc_ver()[0] or "unknown"
    return "glibc-retain" if libc == "glibc" and _retained else libc


def retain_freed_buffers(threshold_bytes: int = 1 << 30) -> str:
    """Let glibc recycle freed buffers up to ``threshold_bytes`` inside the heap instead of unmapping them.

    Process-wide, like ``torch.set_num_threads``; call it once before the encoder's first call. Does nothing
    under a preloaded jemalloc/tcmalloc or a C library other than glibc. Returns :func:`allocator_name`.
    """
    global _retained
    if _plain_glibc() and not _retained:
        libc = ctypes.CDLL(None)
        # Both: with only the mmap threshold raised, glibc's trim threshold (128 KiB once the mmap threshold is
        # set by hand) would hand each freed buffer at the top of the heap straight back to the OS.
        _retained = bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold_bytes)) and bool(
            libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    return allocator_name()


def release_freed_buffers() -> None:
    """Hand the heap's free memory back to the OS now (glibc ``malloc_trim``; a no-op elsewhere).

    After :func:`retain_freed_buffers` the heap keeps its peak; a benchmark that reports peak memory per model
    calls this between models so that each starts from the same resident size.
    """
    if _plain_glibc():
        ctypes.CDLL(None).malloc_trim(0)
