"""Export predictions as CSV, JSON Lines or Parquet, streamed chunk by chunk (``GET /v1/export`` and
``tinyact cloud export``).

Columns: the fields of :class:`tinyact.wire.StoredPrediction`, ``id, device, camera, clip_id, captured_at,
received_at, label, score, top5, model_version``; a CSV or JSONL row is its JSON form. Times are ISO 8601 UTC
in CSV/JSONL and ``timestamp[us, UTC]`` in Parquet; ``top5`` is a JSON string in CSV, a list of
``{label, score}`` objects in JSONL and a ``list<struct<label, score>>`` column in Parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from tinyact.cloud.analytics import RowFilter, iter_predictions
from tinyact.errors import TinyActError
from tinyact.wire import StoredPrediction

ExportFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
COLUMNS = list(StoredPrediction.model_fields)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the file suffix (.csv, .jsonl/.ndjson, .parquet)."""
    if fmt is None:
        suffix = Path(path).suffix.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise TinyActError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} (or a file ending in one)")
    return fmt


def _csv_chunks(chunks: Iterator[list[StoredPrediction]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for chunk in chunks:
        for p in chunk:
            row = p.model_dump(mode="json")
            row["top5"] = json.dumps(row["top5"], separators=(",", ":"))
            writer.writerow([row[c] for c in COLUMNS])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _jsonl_chunks(chunks: Iterator[list[StoredPrediction]]) -> Iterator[bytes]:
    for chunk in chunks:
        yield "".join(p.model_dump_json() + "\n" for p in chunk).encode()


class _Sink:
    """A write-only file that hands out what was written so far (Parquet writes sequentially, no seeks)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._parts.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def parquet_schema() -> Any:
    """The Parquet file's columns (a ``pyarrow.Schema``; pyarrow is imported only for Parquet exports)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("device", pa.string()),
            ("camera", pa.string()),
            ("clip_id", pa.string()),
            ("captured_at", pa.timestamp("us", tz="UTC")),
            ("received_at", pa.timestamp("us", tz="UTC")),
            ("label", pa.string()),
            ("score", pa.float64()),
            ("top5", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))),
            ("model_version", pa.string()),
        ]
    )


def _parquet_chunks(chunks: Iterator[list[StoredPrediction]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    sink = _Sink()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd") as writer:
        for chunk in chunks:  # one row group per chunk
            columns = {
                "id": [p.id for p in chunk],
                "device": [p.device for p in chunk],
                "camera": [p.camera for p in chunk],
                "clip_id": [str(p.clip_id) for p in chunk],
                "captured_at": [p.captured_at for p in chunk],
                "received_at": [p.received_at for p in chunk],
                "label": [p.label for p in chunk],
                "score": [p.score for p in chunk],
                "top5": [[t.model_dump() for t in p.top5] for p in chunk],
                "model_version": [p.model_version for p in chunk],
            }
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            data = sink.take()
            if data:
                yield data
    yield sink.take()


def export_stream(
    engine: Engine,
    fmt: str,
    row_filter: RowFilter = RowFilter(),
    *,
    chunk: int = 2000,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export file's bytes, piece by piece; ``on_rows(n)`` is called after each chunk of ``n`` rows."""
    fmt = format_for("", fmt)
    chunks = iter_predictions(engine, row_filter, chunk)
    if on_rows is not None:
        chunks = _counting(chunks, on_rows)
    writers = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}
    yield from writers[fmt](chunks)


def _counting(chunks: Iterator[list[StoredPrediction]], on_rows: Callable[[int], None]) -> Iterator[list[StoredPrediction]]:
    for chunk in chunks:
        yield chunk
        on_rows(len(chunk))


def export_to_file(
    engine: Engine, out: str | Path, fmt: str | None = None, row_filter: RowFilter = RowFilter(), *, chunk: int = 2000,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write matching predictions to ``out`` (written to ``out.partial`` first, renamed at the end); returns
    the number of rows."""
    out = Path(out)
    fmt = format_for(out, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    rows = 0

    def count(n: int) -> None:
        nonlocal rows
        rows += n
        if on_rows is not None:
            on_rows(n)

    with open(partial, "wb") as handle:
        for data in export_stream(engine, fmt, row_filter, chunk=chunk, on_rows=count):
            handle.write(data)
    partial.replace(out)
    return rows
