"""Configuration base class: pydantic models that load from YAML and echo themselves into run folders.

Every stage has one config model (``ClipConfig``, ``SynthConfig``, ``AETrainConfig`` …) derived from
:class:`TinyActConfig`. Unknown keys are rejected with the key's name (``extra="forbid"``), so a typo in a
YAML file fails at start-up instead of being silently ignored.

Example::

    cfg = SynthConfig.from_yaml("synth.yaml", seed=3)   # file values, then keyword overrides
    cfg.save(run_dir)                                    # writes run_dir/config.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tinyact.errors import ConfigError


def format_validation_error(error: ValidationError, source: str | None = None) -> str:
    """Render a pydantic ``ValidationError`` as short ``key.path: message`` lines for a user."""
    where = f" in {source}" if source else ""
    lines = [f"invalid configuration{where}:"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see --help or the example config)"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


class TinyActConfig(BaseModel):
    """Base of all TinyAct config models: strict keys, YAML in and out."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Self:
        """Validate a plain dict, turning validation errors into a readable :class:`ConfigError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, **overrides: Any) -> Self:
        """Load from a YAML file (if given), then apply keyword overrides whose value is not ``None``."""
        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as error:
                raise ConfigError(f"{path} is not valid YAML: {error}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path} must contain a mapping of keys to values, got {type(loaded).__name__}")
            data.update(loaded)
        data.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(data, source=str(path) if path else None)

    def to_yaml(self) -> str:
        """The resolved config as YAML (paths as strings)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, run_dir: str | Path, name: str = "config.yaml") -> Path:
        """Write the resolved config into ``run_dir/name`` so every run records what it ran with."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / name
        target.write_text(self.to_yaml())
        return target
