"""Stage 2: encoders (3-D video autoencoder, 2-D frame autoencoder) and classifier heads."""

from tinyact.models.autoencoder2d import AutoEncoder2DConfig, FrameAutoEncoder2D
from tinyact.models.autoencoder3d import PRESETS, AutoEncoder3DConfig, VideoAutoEncoder3D
from tinyact.models.factory import build_autoencoder
from tinyact.models.mlp_resnet import MLPResBlock, MLPResNetClassifier, MLPResNetConfig

__all__ = [
    "PRESETS",
    "AutoEncoder2DConfig",
    "AutoEncoder3DConfig",
    "FrameAutoEncoder2D",
    "MLPResBlock",
    "MLPResNetClassifier",
    "MLPResNetConfig",
    "VideoAutoEncoder3D",
    "build_autoencoder",
]
