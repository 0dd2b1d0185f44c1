"""Default locations: everything TinyAct writes lives under one data directory.

``TINYACT_HOME`` overrides it; the default is ``./tinyact-data`` in the current folder, so a fresh clone keeps
its generated data, models and databases next to the code (and out of git, see ``.gitignore``).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The TinyAct data directory (``$TINYACT_HOME`` or ``./tinyact-data``)."""
    return Path(os.environ.get("TINYACT_HOME", "tinyact-data")).expanduser()
