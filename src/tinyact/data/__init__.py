"""Stage 1 of the data path: videos -> sampled uint8 clips.

* :mod:`~tinyact.data.video` — PyAV decoding and time-based clip sampling (``VideoDecodeError`` for bad files)
* :mod:`~tinyact.data.transforms` — resize/crop with torch, ImageNet/CLIP normalisation
* :mod:`~tinyact.data.layouts` — Kinetics CVDF, annotation lists, class folders
* :mod:`~tinyact.data.manifest` — the manifest CSV every later stage reads, balanced sampling
* :mod:`~tinyact.data.cache` — decode once into memory-mapped uint8 shards
* :mod:`~tinyact.data.datasets` — ``torch.utils.data.Dataset`` over a manifest
* :mod:`~tinyact.data.synth` — generated human-action videos in the Kinetics layout
"""

from tinyact.data.cache import ClipCache, build_cache
from tinyact.data.datasets import ClipDataset, collate_clips
from tinyact.data.manifest import Manifest, ManifestEntry, balance
from tinyact.data.transforms import normalize, resize_short_side_center_crop, to_unit
from tinyact.data.video import ClipSampling, VideoDecodeError, VideoInfo, probe_video, read_clip, sample_clips

__all__ = [
    "ClipCache",
    "ClipDataset",
    "ClipSampling",
    "Manifest",
    "ManifestEntry",
    "VideoDecodeError",
    "VideoInfo",
    "balance",
    "build_cache",
    "collate_clips",
    "normalize",
    "probe_video",
    "read_clip",
    "resize_short_side_center_crop",
    "sample_clips",
    "to_unit",
]
