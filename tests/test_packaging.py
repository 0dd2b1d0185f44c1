"""The dependency lists in pyproject.toml: role extras stay lean, and everything the package imports is declared.

Reads pyproject.toml and the source files only; nothing is installed or downloaded.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tinyact"

#: Import names whose distribution is named differently (or that ship inside another distribution).
DISTRIBUTION_OF = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "paho": "paho-mqtt",
    "xgboost": "xgboost-cpu",
    "prometheus_client": "prometheus-client",
    "pydantic_core": "pydantic",
    "psycopg": "psycopg",
}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """``"uvicorn[standard]>=0.29,<1"`` -> ``"uvicorn"``."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def _requirements(extra: str | None) -> set[str]:
    """Distribution names installed by ``tinyact`` or ``tinyact[extra]``, following ``tinyact[...]`` references."""
    project = _project()
    names = {_name(r) for r in project["dependencies"]}
    pending = [extra] if extra else []
    seen: set[str] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for requirement in project["optional-dependencies"][current]:
            inner = re.fullmatch(r"tinyact\[([a-z,\s]+)\]", requirement)
            if inner:
                pending += [e.strip() for e in inner.group(1).split(",")]
            else:
                names.add(_name(requirement))
    return names


def _imported_distributions() -> dict[str, str]:
    """Third-party distributions imported anywhere under ``src/tinyact``, each with one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("tinyact", "__future__"):
                    continue
                found.setdefault(DISTRIBUTION_OF.get(top, top).lower(), str(path.relative_to(ROOT)))
    return found


def test_edge_extra_pulls_no_server_or_training_packages():
    edge = _requirements("edge")
    for heavy in ("fastapi", "pyarrow", "xgboost", "xgboost-cpu", "matplotlib"):
        assert heavy not in edge, f"tinyact[edge] must not depend on {heavy}"
    # what an edge device does need (Alembic: the outbox's schema migrations keep queued clips across upgrades)
    assert {"torch", "av", "httpx", "paho-mqtt", "sqlalchemy", "alembic", "onnxruntime"} <= edge


def test_every_imported_package_is_declared():
    declared = _requirements("dev")
    missing = {dist: where for dist, where in _imported_distributions().items() if dist not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_no_unimported_server_accelerators_declared():
    """uvicorn's optional speed-ups come with ``uvicorn[standard]``, not as direct requirements."""
    declared = _requirements("dev")
    assert "httptools" not in declared and "uvloop" not in declared


def test_torch_range_admits_the_cpu_build_setup_installs():
    torch = next(r for r in _project()["dependencies"] if _name(r) == "torch")
    assert "2.13.0" in (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r">=2\.\d+", torch) and "<3" in torch
