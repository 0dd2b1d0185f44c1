"""Where TinyAct writes, and how: one data directory, and files that appear whole or not at all.

``TINYACT_HOME`` overrides the data directory; the default is ``./tinyact-data`` in the current folder, so a
fresh clone keeps its generated data, models and databases next to the code (and out of git, see
``.gitignore``). :func:`atomic_path` is the one way a file is written in place: under a temporary name beside
it, then renamed over it, so a reader or a resumed run never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def data_home() -> Path:
    """The TinyAct data directory (``$TINYACT_HOME`` or ``./tinyact-data``)."""
    return Path(os.environ.get("TINYACT_HOME", "tinyact-data")).expanduser()


def temporary_name(path: str | Path, *, keep_suffix: bool = False) -> Path:
    """The name :func:`atomic_path` writes under before the rename: ``NAME.tmp`` (``NAME.tmp.SUFFIX``).

    Args:
        path: The file that will be written.
        keep_suffix: Also end with ``path``'s suffix, for writers that pick the format from it.

    Returns:
        A path in the same folder (so the rename never crosses file systems).
    """
    path = Path(path)
    return path.with_name(path.name + ".tmp" + (path.suffix if keep_suffix else ""))


@contextmanager
def atomic_path(path: str | Path, *, keep_suffix: bool = False, durable: bool = False) -> Iterator[Path]:
    """Write ``path`` in one step: yield a temporary path beside it, renamed over ``path`` if the block succeeds.

    A killed writer leaves at most the temporary file (the next write replaces it); a failing block removes it.

    Args:
        path: The file to write; its folder is created.
        keep_suffix: End the temporary name with ``path``'s suffix too (``x.npz.tmp.npz``), for writers that
            choose the format from the extension (NumPy's ``savez``, PyAV, ``torch.onnx.export``).
        durable: ``fsync`` the file before the rename, so it also survives a power cut.

    Yields:
        The temporary path; write the whole file there.

    Example:
        >>> with atomic_path(out / "latents.npz", keep_suffix=True) as tmp:  # doctest: +SKIP
        ...     np.savez(tmp, latents=z)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, keep_suffix=keep_suffix)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
