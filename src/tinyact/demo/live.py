"""What the demo shows while it runs: every capture in the edge database with its true action, as a table.

The simulated cameras know which action each playlist segment shows (:class:`~tinyact.edge.simulate.
RecordingCamera`), so every clip gets its truth and the share of its frames that show it (``purity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from tinyact.edge.store import EdgeStore


@dataclass
class ClipRow:
    """One capture as the edge database has it, with the truth the camera recorded."""

    clip_id: str
    camera_id: str
    captured_at: float
    state: str
    label: str | None
    score: float | None
    result_at: float | None
    encode_ms: float | None
    truth: str | None = None
    purity: float | None = None
    position_s: float | None = None  # playlist time of the window's last frame

    @property
    def latency_s(self) -> float | None:
        """Seconds from the end of the capture window to the result at the edge (None: no result yet)."""
        return None if self.result_at is None else max(0.0, self.result_at - self.captured_at)


@dataclass
class LiveState:
    """What the live table shows (read from the edge database and the cameras' truths)."""

    rows: list[ClipRow] = field(default_factory=list)
    now_on_screen: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bytes_per_clip: float | None = None


def read_clips(store: EdgeStore, cameras: dict[str, Any]) -> list[ClipRow]:
    """Every capture in the edge database with its truth.

    Args:
        store: The edge agent's database.
        cameras: ``{camera_id: RecordingCamera}``, which know the action on screen at any time.

    Returns:
        One :class:`ClipRow` per capture, oldest first.
    """
    from sqlalchemy import select

    from tinyact.edge.store import captures

    c = captures.c
    with store.engine.connect() as db:
        raw = db.execute(select(c.clip_id, c.camera_id, c.captured_at, c.state, c.label, c.score, c.result_at,
                                c.encode_ms, c.delivered_at).order_by(c.captured_at)).all()
    rows = []
    for *r, delivered_at in raw:
        row = ClipRow(*r)
        # The first acknowledgement (the POST response carries the result) is when the result arrived:
        # result_at is rewritten when the same result comes again through the results feed.
        if row.result_at is not None and delivered_at is not None:
            row.result_at = min(row.result_at, delivered_at)
        camera = cameras.get(row.camera_id)
        if camera is not None:
            truth = camera.truth_of(datetime.fromtimestamp(row.captured_at, UTC))
            if truth is not None:
                row.truth, row.purity, row.position_s = truth.label, truth.purity, truth.position_s
        rows.append(row)
    return rows


def is_scored(row: ClipRow) -> bool:
    """Whether a clip counts for accuracy: it has a result and all its frames show one known action."""
    return row.label is not None and row.truth is not None and (row.purity or 0) >= 1.0


def live_table(state: LiveState, elapsed: float, duration: float) -> Table:
    """The Rich table printed while the demo runs (per camera, plus a caption with the totals)."""
    from rich.table import Table

    table = Table(title=f"TinyAct demo: edge → cloud  ({elapsed:4.0f} / {duration:.0f} s)", title_justify="left")
    for name in ("camera", "on screen now", "last clip: true", "predicted"):
        table.add_column(name, justify="left")
    for name in ("score", "latency", "clips", "correct"):
        table.add_column(name, justify="right")
    by_camera: dict[str, list[ClipRow]] = {}
    for row in state.rows:
        by_camera.setdefault(row.camera_id, []).append(row)
    for camera_id in sorted(set(state.now_on_screen) | set(by_camera)):
        rows = by_camera.get(camera_id, [])
        done = [r for r in rows if r.label is not None]
        last = done[-1] if done else None
        scored = [r for r in done if is_scored(r)]
        correct = sum(r.label == r.truth for r in scored)
        predicted = "…" if last is None else (
            f"[green]{last.label}[/]" if last.label == last.truth else f"[red]{last.label}[/]")
        table.add_row(
            camera_id, state.now_on_screen.get(camera_id) or "", (last.truth or "?") if last else "", predicted,
            f"{last.score:.2f}" if last and last.score is not None else "",
            f"{last.latency_s * 1000:.0f} ms" if last and last.latency_s is not None else "",
            str(len(rows)), f"{correct}/{len(scored)}" if scored else "",
        )
    counts = state.counts
    scored = [r for r in state.rows if is_scored(r)]
    accuracy = f"{sum(r.label == r.truth for r in scored) / len(scored):.0%}" if scored else "–"
    bpc = f"{state.bytes_per_clip:.0f} B/clip" if state.bytes_per_clip else "–"
    table.caption = (f"captured {counts.get('captured', 0)} · delivered {counts.get('delivered', 0)} · "
                     f"pending {counts.get('pending', 0)} · accuracy {accuracy} · {bpc} on the wire")
    table.caption_justify = "left"
    return table
