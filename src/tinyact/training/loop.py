"""The epoch loop every trainer runs; each training objective plugs into it.

::

    run_epochs(objective, epochs, trainer)
      for epoch:
        objective.begin_epoch(epoch)    ─► learning rate, seeds, train mode; the epoch's batches (None: stop)
        for batch:
          objective.step(batch)         ─► loss (under autocast) and sums to average
          backward_step                 ─► zero grads, scaled backward, optimiser step, scale update
          objective.after_step()        ─► EMA updates; True ends the epoch early
        sums over ranks ─► objective.end_epoch(epoch, sums, seconds)  ─► evaluate, select, model files; metrics row
        rank 0: metrics.csv row, objective.plot(...), checkpoint = objective.checkpoint(epoch)
        barrier, on_epoch_end(epochs finished, row)

An objective owns what differs between trainers — its batches, loss, metrics row, model selection and the
content of its checkpoint (so resume semantics, file names and metrics columns stay each trainer's own) —
and the loop owns the order of those steps, the optimiser step with its gradient scaler, the progress bar,
the sums across ``torchrun`` ranks and the writing of logs and checkpoints. :func:`restore` and
:func:`checkpoint_state` read and write the parts every checkpoint shares (modules, optimiser, gradient
scaler and, for the trainers that resume their RNG streams, every RNG state).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyact.console import progress_bar
from tinyact.errors import ConfigError
from tinyact.training.distributed import DistInfo, all_reduce_sum, barrier
from tinyact.training.runtime import (
    MetricsLog,
    Precision,
    backward_step,
    load_checkpoint,
    pick_device,
    restore_scaler,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

#: Curves are redrawn at most this often, and after the last epoch: a matplotlib figure costs ~0.5 s, as much as
#: a tenth of a short fine-tuning epoch.
PLOT_EVERY_S = 30.0


@dataclass
class Epoch:
    """One epoch's batches and how the progress bar counts them (``total`` in ``unit``)."""

    batches: Iterable[Any]
    total: int
    unit: str = "batch"


@dataclass
class Step:
    """What one batch gave: the loss to step on (``None``: skip the batch), sums to add up over the epoch, and
    how far the progress bar moves."""

    loss: torch.Tensor | None
    sums: dict[str, float] = field(default_factory=dict)
    advance: int = 1


class Objective:
    """What a trainer plugs into :func:`run_epochs`; subclasses override the methods they need.

    Attributes:
        label: progress-bar label, e.g. ``"kd scratch"``.
        epochs: the run's epoch count (the bar shows ``epoch k/epochs``).
        sum_keys: the keys :meth:`step` sums, so every rank reduces the same list even after no batch.
    """

    label: str = "train"
    epochs: int = 1
    sum_keys: tuple[str, ...] = ()

    def begin_epoch(self, epoch: int) -> Epoch | None:
        """Set the epoch's learning rate, seeds and train mode; its batches, or ``None`` to stop the run."""
        raise NotImplementedError

    def step(self, batch: Any) -> Step:
        """The loss of one batch (computed under the run's autocast) and what to add to the epoch's sums."""
        raise NotImplementedError

    def after_step(self) -> bool:
        """Runs after each optimiser step; ``True`` ends the epoch there."""
        return False

    def postfix(self, sums: Mapping[str, float]) -> str:
        """Text after the progress bar's rate ("" = none)."""
        return ""

    def end_epoch(self, epoch: int, sums: dict[str, float], seconds: float) -> dict[str, float]:
        """Evaluate, pick the best epoch, write the epoch's model files; returns the metrics.csv row.

        ``sums`` are the epoch's :meth:`step` sums over every rank; ``seconds`` its training time.
        """
        raise NotImplementedError

    def plot(self, log: MetricsLog, epoch: int, seconds: float) -> None:
        """Redraw the run's curves (rank 0, after the row is logged)."""

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The resume checkpoint written after ``epoch``."""
        raise NotImplementedError


@dataclass
class Trainer:
    """The optimiser state and outputs one run's loop drives.

    Attributes:
        optimizer: the optimiser :func:`run_epochs` steps.
        scaler: its gradient scaler (enabled for ``amp`` only: see :func:`tinyact.training.runtime.make_scaler`).
        checkpoint: where the resume checkpoint goes.
        log: the metrics log (``None`` on ranks other than 0: they write nothing).
        info: this process's place in a ``torchrun`` job (one process by default).
    """

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    checkpoint: Path
    log: MetricsLog | None
    info: DistInfo = field(default_factory=DistInfo)


def run_epochs(
    objective: Objective,
    epochs: Iterable[int],
    trainer: Trainer,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train ``objective`` for ``epochs`` (0-based indices); returns the last epoch's metrics row ({} when none ran).

    Args:
        objective: the trainer's batches, loss, metrics and checkpoint.
        epochs: the epochs this call runs (a resumed run starts after its checkpoint's).
        trainer: optimiser, gradient scaler, checkpoint path, metrics log and rank.
        on_epoch_end: called with ``(epochs finished, row)`` after each epoch's checkpoint is written.
    """
    row: dict[str, float] = {}
    plotted_at, unplotted = -math.inf, None  # (epoch, seconds) of a row not drawn yet
    for epoch in epochs:
        plan = objective.begin_epoch(epoch)
        if plan is None:
            break
        sums = dict.fromkeys(objective.sum_keys, 0.0)
        started = time.perf_counter()
        with progress_bar(f"{objective.label} epoch {epoch + 1}/{objective.epochs}", total=plan.total,
                          unit=plan.unit) as bar:
            for batch in plan.batches:
                step = objective.step(batch)
                stop = False
                if step.loss is not None:
                    backward_step(step.loss, trainer.optimizer, trainer.scaler)
                    stop = objective.after_step()
                    for key, value in step.sums.items():
                        sums[key] = sums.get(key, 0.0) + value
                    text = objective.postfix(sums)
                    if text:
                        bar.set_postfix(text)
                bar.advance(step.advance)
                if stop:
                    break
        seconds = time.perf_counter() - started
        keys = list(sums)
        sums = dict(zip(keys, all_reduce_sum([sums[k] for k in keys], trainer.info), strict=True))
        row = objective.end_epoch(epoch, sums, seconds)
        if trainer.log is not None:
            trainer.log.append(row)
            unplotted = (epoch, seconds)
            if time.perf_counter() - plotted_at >= PLOT_EVERY_S:
                objective.plot(trainer.log, epoch, seconds)
                plotted_at, unplotted = time.perf_counter(), None
            save_checkpoint(trainer.checkpoint, objective.checkpoint(epoch))
        barrier(trainer.info)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    if trainer.log is not None and unplotted is not None:
        objective.plot(trainer.log, *unplotted)
    return row


def open_run(
    run_dir: Path, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, info: DistInfo, resume: bool,
    checkpoint_name: str = "checkpoint.pt",
) -> tuple[Trainer, dict[str, Any] | None]:
    """The :class:`Trainer` of a run folder (metrics log on rank 0 only) and, with ``resume``, its checkpoint
    (``None`` when there is none yet), loaded onto this rank's device."""
    checkpoint = run_dir / checkpoint_name
    log = MetricsLog(run_dir / "metrics.csv") if info.is_main else None
    trainer = Trainer(optimizer=optimizer, scaler=scaler, checkpoint=checkpoint, log=log, info=info)
    state = load_checkpoint(checkpoint, map_location=info.device) if resume and checkpoint.exists() else None
    return trainer, state


def checkpoint_state(
    modules: Mapping[str, nn.Module], trainer: Trainer, *, rng: bool = False, **extra: Any
) -> dict[str, Any]:
    """A resume checkpoint: each module's ``state_dict`` under its key, ``optimizer``, ``scaler``, every RNG
    state under ``rng`` when asked, and ``extra`` (epoch, best so far, config …)."""
    state: dict[str, Any] = {key: module.state_dict() for key, module in modules.items()}
    state |= {"optimizer": trainer.optimizer.state_dict(), "scaler": trainer.scaler.state_dict()}
    if rng:
        state["rng"] = rng_state()
    return state | extra


def restore(state: Mapping[str, Any], modules: Mapping[str, nn.Module], trainer: Trainer, *, rng: bool = False) -> None:
    """Load what :func:`checkpoint_state` wrote back into ``modules``, the optimiser and the scaler (an empty or
    missing scaler state leaves it as made), and every RNG state when ``rng``."""
    for key, module in modules.items():
        module.load_state_dict(state[key])
    trainer.optimizer.load_state_dict(state["optimizer"])
    restore_scaler(trainer.scaler, state.get("scaler"))
    if rng:
        set_rng_state(state["rng"])


def refuse_overwrite(checkpoint: Path, resume: bool) -> None:
    """Refuse to start a fresh run in a folder that already holds one (``--resume`` continues it instead).

    Raises:
        ConfigError: ``checkpoint`` exists and ``resume`` is off.
    """
    if checkpoint.exists() and not resume:
        raise ConfigError(f"{checkpoint.parent} already holds a training run; pass --resume to continue it "
                          "or choose another --out")


def prepare_device(preference: str, precision: Precision, threads: int | None = None) -> torch.device:
    """The run's device (``auto``: CUDA when present), after setting torch's CPU threads when given.

    Raises:
        ConfigError: ``amp`` asked for on a device that is not a GPU.
    """
    if threads:
        torch.set_num_threads(threads)
    device = pick_device(preference)
    if precision == "amp" and device.type != "cuda":
        raise ConfigError("precision 'amp' needs a GPU; use 'bf16' (or 'fp32') on CPU")
    return device
