"""Stage 2: encoders (3-D video autoencoder, 2-D frame autoencoder) and classifier heads."""

from tinyact.models.autoencoder3d import PRESETS, AutoEncoder3DConfig, VideoAutoEncoder3D

__all__ = ["PRESETS", "AutoEncoder3DConfig", "VideoAutoEncoder3D"]
