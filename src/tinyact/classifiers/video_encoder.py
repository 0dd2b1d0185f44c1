"""``VideoEncoder``: the autoencoder as a scikit-learn transformer over video file paths.

::

    paths ─► PyAV (tinyact.data.video.read_clip: T frames, short side -> size, centre crop)
          ─► uint8 [B, T, 3, S, S] ─► normalise ─► encoder.encode ─► float32 [N, latent_dim]

so a whole video classifier is one scikit-learn object::

    pipe = Pipeline([("enc", VideoEncoder()),          # the pretrained zoo encoder; or checkpoint="model.pt"
                     ("clf", RandomForestClassifier())])
    pipe.fit(train_paths, train_labels)
    pipe.predict(["new_clip.mp4"])

``fit`` loads the encoder from ``checkpoint`` (by default the pretrained ``zoo:everyday-64``); with
``checkpoint=None`` it trains an autoencoder on the fit videos when
``train_epochs > 0`` (unsupervised: the labels are not used), and otherwise builds a randomly initialised
encoder from ``seed`` (the "random encoder" baseline). Learned state ends in ``_`` as scikit-learn expects.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.data.transforms import normalize
from tinyact.data.video import ClipSampling, read_clip, sample_clips
from tinyact.errors import TinyActError
from tinyact.models.base import config_of
from tinyact.models.checkpoint import load_model, state_dict_hash
from tinyact.models.factory import build_autoencoder
from tinyact.training.extract import encode_windows
from tinyact.training.runtime import pick_device

logger = logging.getLogger(__name__)


class VideoEncoder(TransformerMixin, BaseEstimator):
    """Video paths -> latent vectors ``[N, latent_dim]`` (float32) with a TinyAct autoencoder.

    Args:
        checkpoint: ``zoo:NAME`` (default: the shipped pretrained encoder) or a model file to load in ``fit``;
            ``None`` for an encoder trained on the ``fit`` videos or randomly initialised (see ``train_epochs``).
        kind, preset, model_overrides: the model to build when there is no checkpoint.
        size: crop size in pixels (default: the checkpoint's training size, else 112).
        frames: frames per clip (default: the checkpoint's, else 16).
        batch_size: clips per encoder call in ``transform``.
        device: ``cpu``, ``cuda`` or ``auto``.
        train_epochs: without a checkpoint, train an autoencoder on the ``fit`` videos for this many epochs
            (0 = keep the random initialisation).
        lr: learning rate of that training.
        seed: seed of the initialisation and of the training.
        work_dir: run folder of that training (default: a temporary folder, removed afterwards).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = "zoo:everyday-64",
        kind: str = "ae3d",
        preset: str = "fast",
        model_overrides: dict[str, Any] | None = None,
        size: int | None = None,
        frames: int | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        train_epochs: int = 0,
        lr: float = 1e-3,
        seed: int = 0,
        work_dir: str | Path | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.kind = kind
        self.preset = preset
        self.model_overrides = model_overrides
        self.size = size
        self.frames = frames
        self.batch_size = batch_size
        self.device = device
        self.train_epochs = train_epochs
        self.lr = lr
        self.seed = seed
        self.work_dir = work_dir

    def fit(self, X: Sequence[str | Path], y: Sequence[Any] | None = None) -> VideoEncoder:
        """Load (or train, or randomly initialise) the encoder. ``X``: video paths; ``y`` is not used."""
        from tinyact.zoo import encoder_sampling, load_model_spec

        entry = None
        if self.checkpoint is not None:
            model, info = load_model_spec(self.checkpoint)
            entry = info.get("zoo")
            config = info.get("config") or {}
            size = self.size or int(min(config.get("input_size", (112, 112))))
            frames = self.frames or int(config.get("num_frames", 16))
            weights_hash = str(info["hash"])
        elif self.train_epochs > 0:
            model, weights_hash, size, frames = self._train(X)
        else:
            size, frames = self.size or 112, self.frames or 16
            torch.manual_seed(self.seed)
            model = build_autoencoder(self.kind, self.preset, **{**(self.model_overrides or {}), "num_frames": frames, "input_size": size})
            weights_hash = state_dict_hash(model.state_dict())
        self.device_ = pick_device(self.device)
        self.encoder_ = model.eval().to(self.device_)
        self.encoder_hash_ = weights_hash
        self.sampling_ = encoder_sampling(entry, frames, size)
        self.n_features_out_ = int(config_of(model).latent_dim)
        return self

    def _train(self, X: Sequence[str | Path]) -> tuple[torch.nn.Module, str, int, int]:
        from tinyact.training.ae import AETrainConfig, train_autoencoder

        size, frames = self.size or 112, self.frames or 16
        with tempfile.TemporaryDirectory(prefix="tinyact-videoencoder-") as tmp:
            run_dir = Path(self.work_dir) if self.work_dir else Path(tmp) / "run"
            # Unsupervised: every video is a training clip; one placeholder label keeps the manifest valid.
            entries = [ManifestEntry(str(Path(p).resolve()), "clip", "train", f"v{i:06d}") for i, p in enumerate(X)]
            manifest_csv = Manifest(entries, Path("/")).write(Path(tmp) / "manifest.csv")
            cfg = AETrainConfig(
                manifest=manifest_csv, out=run_dir, kind=self.kind, preset=self.preset,
                model_overrides=self.model_overrides or {}, size=size, frames=frames,
                batch_size=self.batch_size, lr=self.lr, epochs=self.train_epochs, seed=self.seed,
                workers=1, device=self.device, cache_dir=Path(tmp) / "cache",
            )
            result = train_autoencoder(cfg, resume=run_dir.joinpath("checkpoint.pt").exists())
            model, info = load_model(result.checkpoint)
        return model, str(info["hash"]), size, frames

    @torch.no_grad()
    def transform(self, X: Sequence[str | Path]) -> np.ndarray:
        """Decode each video (PyAV) and encode it: ``[N, latent_dim]`` float32, rows in the order of ``X``.

        A video that cannot be decoded raises :class:`~tinyact.data.video.VideoDecodeError` naming the file
        (a transformer cannot drop rows without misaligning the labels).
        """
        check_is_fitted(self, "encoder_")
        if isinstance(X, str | Path):
            raise TinyActError("VideoEncoder.transform takes a list of video paths, not a single path")
        stats = config_of(self.encoder_).normalization
        rows: list[np.ndarray] = []
        paths = list(X)
        for start in range(0, len(paths), self.batch_size):
            clips = torch.stack([_read_windows(p, self.sampling_) for p in paths[start : start + self.batch_size]])
            x = normalize(clips.to(self.device_), stats)  # uint8 [B, (K,) T, 3, S, S] -> float normalised
            rows.append(encode_windows(self.encoder_, x).cpu().numpy())
        if not rows:
            return np.zeros((0, self.n_features_out_), np.float32)
        return np.concatenate(rows).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "encoder_")
        return np.asarray([f"latent{i}" for i in range(self.n_features_out_)], dtype=object)


def _read_windows(path: str | Path, sampling: ClipSampling) -> torch.Tensor:
    """uint8 ``[T, 3, S, S]``, or ``[K, T, 3, S, S]`` for a ``multi`` sampling (the encoder averages the K)."""
    if sampling.strategy != "multi":
        return read_clip(path, sampling)
    return torch.stack([clip.frames for clip in sample_clips(path, sampling)])
