"""Stage 2: encoders (3-D video autoencoder, 2-D frame autoencoder) and classifier heads."""

from tinyact.models.autoencoder3d import PRESETS, AutoEncoder3DConfig, VideoAutoEncoder3D
from tinyact.models.mlp_resnet import MLPResBlock, MLPResNetClassifier, MLPResNetConfig

__all__ = [
    "PRESETS",
    "AutoEncoder3DConfig",
    "MLPResBlock",
    "MLPResNetClassifier",
    "MLPResNetConfig",
    "VideoAutoEncoder3D",
]
