"""Logging and progress bars shared by every stage.

All modules log through the standard :mod:`logging` module (``logging.getLogger(__name__)``); the CLI calls
:func:`setup_logging` once, which routes records through Rich. Long loops use :func:`progress_bar`, which is
a Rich progress bar on a terminal and stays quiet (but still logs a summary) when output is not a TTY or when
``TINYACT_NO_PROGRESS=1`` is set (tests, CI logs).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# soft_wrap: long messages (paths!) stay on one line in logs and captured output instead of wrapping at 80.
console = Console(stderr=True, soft_wrap=True)


def setup_logging(verbose: bool = False) -> None:
    """Route the ``tinyact`` loggers through Rich; ``verbose`` turns on DEBUG."""
    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=console, show_path=verbose, rich_tracebacks=True, markup=False)
    root = logging.getLogger()
    # Replace handlers from an earlier call (tests call the CLI many times in one process).
    root.handlers = [h for h in root.handlers if not isinstance(h, RichHandler)]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("tinyact").setLevel(level)


def progress_enabled() -> bool:
    """Whether to draw live progress bars (a TTY, and not disabled by ``TINYACT_NO_PROGRESS``)."""
    return os.environ.get("TINYACT_NO_PROGRESS", "") not in {"1", "true", "yes"} and sys.stderr.isatty()


def make_progress() -> Progress:
    """A Rich progress bar with count, rate, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress_enabled(),
        transient=False,
    )


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it") -> Iterator[ProgressHandle]:
    """Context manager yielding a handle with ``advance(n)`` and ``set_postfix(text)``.

    Example::

        with progress_bar("decode", total=len(items), unit="clip") as bar:
            for item in items:
                ...
                bar.advance()
    """
    progress = make_progress()
    with progress:
        task_id = progress.add_task(description, total=total, rate="")
        yield ProgressHandle(progress, task_id, unit)


class ProgressHandle:
    """Advances one Rich task and shows its throughput in ``unit``/s."""

    def __init__(self, progress: Progress, task_id: TaskID, unit: str) -> None:
        self._progress = progress
        self._task_id = task_id
        self._unit = unit
        self._postfix = ""

    def advance(self, n: float = 1) -> None:
        self._progress.advance(self._task_id, n)
        task = self._progress.tasks[self._task_id]
        speed = task.speed
        rate = f"{speed:.1f} {self._unit}/s" if speed else ""
        self._progress.update(self._task_id, rate=" ".join(filter(None, [rate, self._postfix])))

    def set_postfix(self, text: str) -> None:
        self._postfix = text

