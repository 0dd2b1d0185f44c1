"""The model zoo: pretrained encoders shipped inside the package, so a user starts from an encoder that
already knows human motion (as a user of mmaction2 starts from a Kinetics checkpoint), with nothing to
download.

An entry is a folder ``tinyact/zoo/entries/<name>/`` with

* ``entry.yaml`` — what the model is and how it was made: architecture config, input (frames, size,
  normalisation), the pretraining classes, the recipe (corpus and training configs), the weights file's
  SHA-256, the encoder hash every latent carries, the metrics and the machine that trained it;
* ``encoder.fp16.pt`` — the encoder's weights (encoder convolutions and latent projection) in float16.

:func:`load_encoder` checks the SHA-256 before it unpickles anything and refuses a corrupted file with one
line. Encoder specs accepted wherever a user names an encoder (:func:`resolve_encoder`)::

    zoo:NAME        a zoo entry (the default everywhere is zoo:DEFAULT_ENCODER)
    PATH            a model file written by TinyAct (train ae, train ssl, train kd, pretraining)
    scratch         no pretrained encoder: the paper's from-scratch path (Table 1 trains its own)

:func:`load_model_spec` is ``load_model`` for specs; :func:`materialize` writes a zoo encoder as a model file
for code that needs one on disk (the edge's ONNX and int8 exports go next to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from tinyact.data.video import ClipSampling
from tinyact.errors import ConfigError, TinyActError

ZOO_DIR = Path(__file__).parent
ENTRIES_DIR = ZOO_DIR / "entries"
#: The encoder every command uses unless told otherwise.
DEFAULT_ENCODER = "everyday-64"
WEIGHTS_FILE = "encoder.fp16.pt"


@dataclass(frozen=True)
class ZooEntry:
    """One shipped encoder, as ``entry.yaml`` describes it."""

    name: str
    description: str
    config: dict[str, Any]
    label_names: list[str]
    weights_sha256: str
    encoder_hash: str
    folder: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.config["num_frames"])

    @property
    def size(self) -> int:
        return int(self.config["input_size"][0])

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_FILE

    def clip_sampling(self) -> ClipSampling:
        """How this encoder reads a video file: the entry's sampling (``uniform`` for entries that name none)
        at its frames and size. With ``multi``, a video's latent is the mean over its windows."""
        sampling = self.input.get("sampling", "uniform")
        fields = {"strategy": sampling} if isinstance(sampling, str) else dict(sampling)
        return ClipSampling.model_validate({**fields, "num_frames": self.frames, "size": self.size})

    @classmethod
    def read(cls, folder: Path) -> ZooEntry:
        data = yaml.safe_load((folder / "entry.yaml").read_text())
        return cls(
            name=data["name"], description=data.get("description", ""), config=data["config"],
            label_names=list(data.get("label_names", [])), weights_sha256=data["weights"]["sha256"],
            encoder_hash=data["encoder_hash"], folder=folder, metrics=data.get("metrics", {}),
            recipe=data.get("recipe", {}), trained_on=data.get("trained_on", {}), input=data.get("input", {}),
        )


def list_entries() -> list[ZooEntry]:
    """Every entry shipped with this installation, by name."""
    if not ENTRIES_DIR.is_dir():
        return []
    return [ZooEntry.read(p) for p in sorted(ENTRIES_DIR.iterdir()) if (p / "entry.yaml").is_file()]


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``; a clear error listing the others when there is none."""
    folder = ENTRIES_DIR / name
    if not (folder / "entry.yaml").is_file():
        known = ", ".join(e.name for e in list_entries()) or "none"
        raise ConfigError(f"no zoo encoder called {name!r} (shipped: {known}; see `tinyact zoo list`)")
    return ZooEntry.read(folder)


def encoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights that run on the edge (encoder, projection; the decoder is not part of a zoo entry)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(("decoder", "from_latent", "seed_expand"))}


def build_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """A ``VideoAutoEncoder3D`` for ``config`` whose (unused) decoder is initialised from a fixed seed, so the
    whole model's hash is the same on every machine."""
    from tinyact.models.autoencoder3d import AutoEncoder3DConfig, VideoAutoEncoder3D

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        return VideoAutoEncoder3D(AutoEncoder3DConfig.from_dict(config))
    finally:
        torch.random.set_rng_state(state)


def load_encoder(name: str = DEFAULT_ENCODER) -> tuple[torch.nn.Module, ZooEntry]:
    """The zoo encoder ``name`` in eval mode (float32) and its entry; refuses a file whose SHA-256 is wrong."""
    from tinyact.models.checkpoint import state_dict_hash

    entry = get_entry(name)
    if not entry.weights.is_file():
        raise TinyActError(f"zoo encoder {name!r}: weights file {entry.weights} is missing; reinstall TinyAct "
                           f"or rebuild it with `tinyact zoo build {name}`")
    from tinyact.hashing import file_sha256

    actual = file_sha256(entry.weights)
    if actual != entry.weights_sha256:
        raise TinyActError(f"zoo encoder {name!r}: {entry.weights} is corrupted (SHA-256 {actual[:12]}…, expected "
                           f"{entry.weights_sha256[:12]}…); reinstall TinyAct or rebuild it with `tinyact zoo build {name}`")
    weights = torch.load(entry.weights, map_location="cpu", weights_only=True)
    model = build_from_config(entry.config)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    if unexpected or any(not k.startswith(("decoder", "from_latent", "seed_expand")) for k in missing):
        raise TinyActError(f"zoo encoder {name!r}: weights do not fit its config (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.eval()
    if state_dict_hash(model.state_dict()) != entry.encoder_hash:
        raise TinyActError(f"zoo encoder {name!r}: loaded weights hash differently from entry.yaml; rebuild it")
    return model, entry


def encoder_sampling(entry: ZooEntry | None, frames: int, size: int,
                     override: dict[str, Any] | None = None) -> ClipSampling:
    """How an encoder reads a video file at ``frames`` x ``size`` px: ``override`` (ClipSampling fields) if
    given, else a zoo entry's own sampling, else ``uniform`` (model files and scratch encoders)."""
    own = entry.clip_sampling().model_dump(exclude={"num_frames", "size", "threads"}) if entry else {}
    reading = override or own
    try:
        return ClipSampling.model_validate({"strategy": "uniform", **reading, "num_frames": frames, "size": size})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sampling'}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"sampling {reading} is not a valid reading ({problems}); it replaces the encoder's own "
                          f"reading {own or {'strategy': 'uniform'}} as a whole, so give every field it needs") from None


def load_model_spec(spec: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`~tinyact.models.checkpoint.load_model` that also takes ``zoo:NAME``: ``(model, info)`` with the same
    ``info`` keys (``kind``, ``config``, ``hash``, ``extra``) plus ``zoo`` (the entry) for a zoo encoder."""
    from tinyact.models.checkpoint import load_model

    text = str(spec)
    if not text.startswith("zoo:"):
        return load_model(spec, map_location)
    model, entry = load_encoder(text[4:] or DEFAULT_ENCODER)
    info = {"kind": type(model).__name__, "config": entry.config, "hash": entry.encoder_hash,
            "extra": {"label_names": entry.label_names}, "zoo": entry}
    return model.to(map_location), info


def materialize(spec: str | Path, folder: Path) -> Path:
    """A model file for ``spec``: itself when it is a path, else the zoo encoder written once (with
    :func:`~tinyact.models.checkpoint.save_model`) into ``folder`` as ``<name>-<hash>.pt``.

    For consumers that work on files (the edge's ONNX / int8 exports are written next to it)."""
    from tinyact.models.checkpoint import save_model

    text = str(spec)
    if not text.startswith("zoo:"):
        return Path(text)
    model, entry = load_encoder(text[4:] or DEFAULT_ENCODER)
    path = Path(folder) / f"{entry.name}-{entry.encoder_hash[:12]}.pt"
    if not path.is_file():
        save_model(path, model, extra={"zoo": entry.name, "label_names": entry.label_names})
    return path


@dataclass(frozen=True)
class EncoderChoice:
    """What an encoder spec resolved to: a module (None for ``scratch``), its hash and where it came from."""

    spec: str
    model: torch.nn.Module | None
    encoder_hash: str | None
    entry: ZooEntry | None = None

    @property
    def is_scratch(self) -> bool:
        return self.model is None


def resolve_encoder(spec: str | Path | None) -> EncoderChoice:
    """``zoo:NAME`` | a model file | ``scratch`` (``None`` = the default zoo encoder) -> :class:`EncoderChoice`."""
    from tinyact.models.checkpoint import load_model, state_dict_hash

    text = str(spec) if spec is not None else f"zoo:{DEFAULT_ENCODER}"
    if text == "scratch":
        return EncoderChoice(text, None, None)
    if text.startswith("zoo:"):
        model, entry = load_encoder(text[4:] or DEFAULT_ENCODER)
        return EncoderChoice(text, model, entry.encoder_hash, entry)
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"encoder {text!r} is neither zoo:NAME, scratch, nor an existing model file")
    model, info = load_model(path)
    return EncoderChoice(text, model, str(info.get("hash") or state_dict_hash(model.state_dict())))


__all__ = ["DEFAULT_ENCODER", "EncoderChoice", "ZooEntry", "get_entry", "list_entries", "load_encoder",
           "load_model_spec", "materialize", "resolve_encoder"]
