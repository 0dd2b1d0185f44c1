"""Helpers shared by the benchmark scripts: machine description, timing, tables, result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=160)


def quick_int8_options() -> Any:
    """The :class:`~tinyact.models.quantize.Int8Options` of ``--quick`` runs and of tests whose subject is not the
    int8 fine-tuning: 3 quantisation-aware steps instead of the shipped 100 (~15 s a quantisation on 2 cores)."""
    from tinyact.models.quantize import Int8Options

    return Int8Options(finetune_steps=3)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, threads torch uses, library versions: printed with every result table."""
    import av
    import numpy
    import torch

    from tinyact.models.allocator import allocator_name

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pyav": av.__version__,
        "ffmpeg": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "allocator": allocator_name(),
    }


def add_malloc_option(parser: argparse.ArgumentParser) -> None:
    """``--malloc retain|default``: whether the benchmark lets glibc reuse freed multi-MB tensors
    (:func:`tinyact.models.allocator.retain_freed_buffers`); the choice is recorded in :func:`machine_info`."""
    parser.add_argument("--malloc", choices=["retain", "default"], default="retain",
                        help="retain: glibc reuses freed multi-MB tensors instead of re-mapping them every call "
                        "(tinyact.models.allocator), for every row; default: the allocator as configured")


def apply_malloc_option(args: argparse.Namespace) -> None:
    """Apply ``--malloc`` before the first timed call."""
    from tinyact.models.allocator import retain_freed_buffers

    if args.malloc == "retain":
        retain_freed_buffers()


def time_repeats(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def latency_ms(model: Any, shape: tuple[int, ...], repeats: int) -> float:
    """Median batch-1 encode time (ms) of ``model`` (its ``encode``, or the module itself, e.g. a TorchScript int8
    encoder) on a random normalised clip of ``shape`` (no grad)."""
    import torch

    x = torch.randn(1, *shape)
    encode = getattr(model, "encode", model)
    with torch.inference_mode():
        return median(time_repeats(lambda: encode(x), repeats, warmup=3)) * 1000


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_results(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write results JSON (with the machine and command line) if ``path`` is given."""
    if path is None:
        return
    payload = {"command": " ".join(sys.argv), "machine": machine_info(), **payload}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str))


# ---- CPU accounting and pinning of a service under test (Linux /proc) ----------------------------------------
def tree_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants (Linux /proc; 0 elsewhere)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def pin_self_away_from_cpu0() -> bool:
    """Move this process to every CPU but 0; False (and unpinned) where there is one CPU or no affinity API."""
    cpus: set[int] = getattr(os, "sched_getaffinity", lambda _pid: set())(0) - {0}
    if not cpus:
        return False
    os.sched_setaffinity(0, cpus)
    return True


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Pin ``pid`` and all its threads and child processes to ``cpus`` (Linux /proc)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)
        children = task / "children"
        for child in (children.read_text().split() if children.exists() else []):
            pin_tree(int(child), cpus)
