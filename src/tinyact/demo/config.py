"""Settings of ``tinyact demo`` (YAML or command-line options; echoed into the run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tinyact.config import TinyActConfig
from tinyact.models.runtime import Backend
from tinyact.paths import data_home

#: The device name the demo registers with its cloud.
DEMO_DEVICE = "demo-edge"


class DemoConfig(TinyActConfig):
    """Settings of ``tinyact demo``."""

    data: Path = Field(default_factory=lambda: data_home() / "synth", title="Synthetic dataset folder")
    out: Path = Field(default_factory=lambda: data_home() / "demo", title="Run folder (summary.json, databases)")
    models: Path | None = Field(None, title="Where trained models are kept for reuse", description="default: DATA/models")
    classes: int = Field(10, ge=2, le=12)
    clips_per_class: int = Field(20, ge=3)
    actors: int = Field(20, ge=3, title="Distinct generated actors (train / val / test actors are disjoint)")
    video_size: int = Field(128, ge=32, title="Height of generated videos (px)")
    clip_seconds: tuple[float, float] = Field((2.0, 4.0), title="Shortest and longest generated clip (s)")
    clip_size: int = Field(112, ge=16, title="Clip crop size fed to the encoder (px)")
    seed: int = 0
    # encoder + classifier
    encoder: str = Field(
        "zoo:everyday-64", title="Encoder: zoo:NAME, a model file, or scratch",
        description="zoo:NAME / a model.pt (e.g. a KD student): its input size replaces clip_size; scratch trains "
                    "the paper's autoencoder briefly on the demo's clips (close to chance: it shows the plumbing)")
    finetune_epochs: int = Field(
        3, ge=0, title="Fine-tune a zoo encoder on the training actors' clips (epochs; 0: keep it frozen)",
        description="`tinyact train finetune` on one 2 s window per example, kept only if the val probe improves; "
                    "3: as good as 4 on 20 unseen actors, ~20 s less (benchmarks/demo_actors.py)")
    finetune_frozen_stages: int = Field(
        0, ge=0, title="Encoder stages fine-tuning keeps as pretrained (the stem first)",
        description="FinetuneConfig.frozen_stages: fewer layers to train, a faster fine-tune")
    finetune_precision: Literal["fp32", "bf16"] = Field(
        "fp32", title="Fine-tuning precision: fp32 or bf16 (autocast)",
        description="bf16 fine-tunes 1.8x faster on a CPU that computes bfloat16 natively (AVX512-BF16, AMX) but "
                    "scored 4.7 points lower on 20 unseen actors (benchmarks/demo_actors.py); elsewhere it is "
                    "emulated and far slower")
    encoder_preset: str = Field(
        "fast-motion", title="3-D autoencoder preset (scratch)",
        description="fast-motion: background-subtracted input, what makes latents carry the action (docs/MODELS.md)",
    )
    encoder_epochs: int = Field(2, ge=1, title="Autoencoder training epochs (scratch; brief: this is a demo)")
    encoder_batch: int = Field(8, ge=1)
    classifier: str = Field("svm", title="Classifier kind (tinyact classify fit kinds)")
    classifier_folds: int = Field(3, ge=2)
    # the live system
    cameras: int = Field(5, ge=1, le=64, title="Simulated cameras")
    duration_s: float = Field(30.0, gt=0, title="How long the edge agent runs",
                              description="30 s: about 50 scored clips, and the whole demo within 3 min from a fresh "
                                          "clone on 2 cores with the fine-tuning")
    interval_s: float = Field(2.0, gt=0, title="Seconds between two clips of one camera (paper: 10)")
    capture_fps: float = Field(8.0, gt=0, title="Frame rate of a clip's 16 frames (window = 15 / fps)",
                               description="8: the rate the default encoder was pretrained and reads files at")
    min_segment_s: float = Field(6.0, gt=0, title="Each action plays at least this long on a camera")
    playlist_clips: int = Field(6, ge=1, title="Action takes per camera playlist",
                                description="6 takes of >= 6 s: longer than the live phase, so no take is rendered "
                                            "in vain")
    wire_dtype: Literal["float16", "int8", "float32"] = "float16"
    backend: Backend = Field(
        "torch", title="Edge encoder backend",
        description="int8 backends are quantised first, calibrated on 32 cached training clips (docs/EDGE.md)")

    def models_dir(self) -> Path:
        """Where trained encoders, latents and classifiers are kept for reuse (``models`` or ``DATA/models``)."""
        return self.models or (self.data / "models")
