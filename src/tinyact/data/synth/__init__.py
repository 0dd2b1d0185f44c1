"""Synthetic human actions: an articulated figure performing actions, written as real H.264 files in the
Kinetics-400 CVDF layout (see :mod:`tinyact.data.synth.generator`)."""

from tinyact.data.synth.actions import ACTION_NAMES
from tinyact.data.synth.generator import SynthConfig, generate

__all__ = ["ACTION_NAMES", "SynthConfig", "generate"]
