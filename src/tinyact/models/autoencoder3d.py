"""``VideoAutoEncoder3D``: the paper's 3-D convolutional video autoencoder (clip -> 1024-d latent -> clip).

Encoder (paper, "3D Video autoencoder")::

    x [B, T, 3, H, W] ──permute──► [B, 3, T, H, W]
      ├─ Conv3d 3→64    k = stem_kernel (3), stride = stem_stride (paper: 2)  ─ BN ─ ReLU
      ├─ Conv3d 64→128  k3, stride = block_stride (2)        ─ BN ─ ReLU
      ├─ Conv3d 128→256 k3, stride 2                         ─ BN ─ ReLU
      ├─ Conv3d 256→512 k3, stride 2                         ─ BN ─ ReLU      [B, 512, t, h, w]
      ├─ AdaptiveAvgPool3d(pool_size)  (paper: 1×1×1)                          [B, 512, *pool_size]
      └─ flatten ─ Linear ─► z [B, 1024]

Decoder (mirror)::

    z ─ Linear ─► [B, seed_channels, t, h, w] ─ 1×1×1 Conv3d to 512 ─ BN ─ ReLU
      ├─ ConvTranspose3d 512→256 ─ BN ─ ReLU   (each undoes one encoder stride, to that block's input shape)
      ├─ ConvTranspose3d 256→128 ─ BN ─ ReLU
      ├─ ConvTranspose3d 128→64  ─ BN ─ ReLU
      └─ ConvTranspose3d 64→3    ─ Sigmoid ─► x̂ [B, T, 3, H, W] in [0, 1]

The decoder starts from the encoder's pre-pool grid ``(t, h, w)`` rather than from ``1×1×1``: four stride-2
transposed convolutions cannot grow one voxel back to 224×224, and a Linear straight to 512 channels on that
grid would hold ~100 M weights. ``seed_channels`` (default 32) keeps that Linear small.

The encoder takes float input normalised as ``normalization`` says (ImageNet statistics by default); the
reconstruction target is the same clip in ``[0, 1]``.

``input_mode="residual"`` (not in the paper; the ``fast-motion`` preset): the encoder first subtracts the
clip's mean frame from every frame, so what a static camera sees all the time (background, furniture, an
actor's idle torso) cancels and only what moves reaches the latent; the decoder then reconstructs that
residual, mapped to ``[0, 1]`` as ``0.5 + residual_gain · (x − mean_t x)``
(:meth:`VideoAutoEncoder3D.reconstruction_target`). On the synthetic set with held-out actors this is what
lifts the latent above chance (docs/MODELS.md): with RGB input the MSE is spent on the background, which
fills >90 % of the pixels and says nothing about the action. ``input_mode="rgb+residual"`` gives the first
convolution both, stacked as ``2 · in_channels`` channels: the residual (what moves) and the frame itself (the
body's shape, which the residual cancels where a limb stays still); the decoder reconstructs the residual.

``stage_blocks`` (not in the paper): after each strided convolution, that many bottleneck residual blocks
(1×1×1 reduce to a quarter, 3×3×3, 1×1×1 expand, identity skip; :class:`Bottleneck3d`): depth at a small cost,
since the 3×3×3 runs on a quarter of the channels. Empty (the default, and every preset before it) builds the
exact module tree of the plain network, so older model files load unchanged.

The model is built for one input shape ``(T, H, W)`` (any size; non-square works): the decoder needs it to
restore the exact shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from tinyact.data.transforms import NormStats
from tinyact.models.base import ClipAutoEncoder

Triple = tuple[int, int, int]
#: What the first convolution sees: the frames, their residual (minus the clip's mean frame), or both.
InputMode = Literal["rgb", "residual", "rgb+residual"]


@dataclass(frozen=True)
class AutoEncoder3DConfig:
    """Hyper-parameters of :class:`VideoAutoEncoder3D` (everything needed to rebuild it from a checkpoint)."""

    num_frames: int = 16
    input_size: tuple[int, int] = (224, 224)
    in_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512)
    stem_stride: Triple = (2, 2, 2)
    #: The stem's kernel (odd sizes, centred). Below the stride in a dimension it skips input rows: at the
    #: ``fast`` presets' spatial stride 4 a kernel of 3 never reads one pixel row and column in four.
    stem_kernel: Triple = (3, 3, 3)
    block_stride: Triple = (2, 2, 2)
    pool_size: Triple = (1, 1, 1)
    latent_dim: int = 1024
    seed_channels: int = 32
    normalization: NormStats = "imagenet"
    input_mode: InputMode = "rgb"
    residual_gain: float = 4.0
    stage_blocks: tuple[int, ...] = ()
    preset: str = "custom"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoEncoder3DConfig:
        tuples = {"input_size", "channels", "stem_stride", "stem_kernel", "block_stride", "pool_size", "stage_blocks"}
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**fields)


#: Named presets. ``paper`` is the literal text (stem stride 2, pool to 1×1×1);
#: ``fast`` keeps the family but strides the stem 4× in space, cutting the stem's output positions 4×;
#: ``fast-motion`` is ``fast`` on the background-subtracted clip (``input_mode="residual"``, see above).
PRESETS: dict[str, AutoEncoder3DConfig] = {
    "paper": AutoEncoder3DConfig(preset="paper"),
    "fast": AutoEncoder3DConfig(stem_stride=(2, 4, 4), preset="fast"),
    "fast-motion": AutoEncoder3DConfig(stem_stride=(2, 4, 4), input_mode="residual", preset="fast-motion"),
}


def _conv_out(size: int, stride: int) -> int:
    """Output length of a kernel-3, padding-1 convolution."""
    return (size - 1) // stride + 1


def conv_input(x: torch.Tensor, mode: InputMode) -> torch.Tensor:
    """``[B, T, C, H, W]`` normalised clips -> ``[B, C', T, H, W]`` for the first convolution: the clips
    (``rgb``), minus the clip's mean frame (``residual``), or both stacked on the channels (``rgb+residual``,
    ``C' = 2C``). A plain function so the quantised runtime runs the same float step in front of its int8 stack."""
    if mode != "rgb":
        residual = x - x.mean(dim=1, keepdim=True)  # minus the clip's mean frame: the static scene cancels
        x = residual if mode == "residual" else torch.cat([residual, x], dim=2)
    return x.permute(0, 2, 1, 3, 4)  # [B, T, C, H, W] -> [B, C, T, H, W]


class Bottleneck3d(nn.Module):
    """``relu(x + BN(1×1×1(relu(BN(3×3×3(relu(BN(1×1×1(x)))))))))`` on ``channels // 4`` inner channels.

    The last BN starts at zero scale, so a new block is the identity and deepening a network does not disturb
    what its plain layers compute at the start of training.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(8, channels // 4)
        last_norm = nn.BatchNorm3d(channels)
        nn.init.zeros_(last_norm.weight)
        self.body = nn.Sequential(
            nn.Conv3d(channels, inner, 1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(inplace=True),
            nn.Conv3d(inner, inner, 3, padding=1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(inplace=True),
            nn.Conv3d(inner, channels, 1, bias=False), last_norm,
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


def _stages(encoder: nn.Module) -> list[list[nn.Module]]:
    """An encoder's modules grouped by stage: each group starts at a strided convolution."""
    stages: list[list[nn.Module]] = []
    for module in encoder.children():
        if isinstance(module, nn.Conv3d):
            stages.append([])
        stages[-1].append(module)
    return stages


def _as_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class VideoAutoEncoder3D(ClipAutoEncoder):
    """3-D conv autoencoder: ``encode(x) -> z``, ``decode(z) -> x̂``, ``forward(x) -> (z, x̂)``.

    Args:
        config: an :class:`AutoEncoder3DConfig`; or keyword overrides of the default (paper) config.

    Shapes: ``x`` float ``[B, T, C, H, W]`` (normalised), ``z`` ``[B, latent_dim]``, ``x̂`` ``[B, T, C, H, W]``
    in ``[0, 1]``.
    """

    PRESETS = PRESETS

    def __init__(self, config: AutoEncoder3DConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = replace(config or AutoEncoder3DConfig(), **overrides)
        config = replace(config, input_size=_as_pair(config.input_size))
        self.config = config
        self.frozen_stages = 0  # freeze_stages(): the first stages keep their weights and BatchNorm statistics
        strides = [config.stem_stride] + [config.block_stride] * (len(config.channels) - 1)

        # Shapes (T, H, W) entering each encoder block, and the final grid.
        shapes: list[Triple] = [(config.num_frames, *config.input_size)]
        for stride in strides:
            shapes.append(tuple(_conv_out(n, s) for n, s in zip(shapes[-1], stride, strict=True)))  # type: ignore[arg-type]
        self._block_shapes = shapes
        grid = shapes[-1]

        if config.stage_blocks and len(config.stage_blocks) != len(config.channels):
            raise ValueError(f"stage_blocks needs one count per stage ({len(config.channels)}), "
                             f"got {config.stage_blocks}")
        encoder: list[nn.Module] = []
        in_ch = config.in_channels * (2 if config.input_mode == "rgb+residual" else 1)
        if any(k % 2 == 0 or k < 1 for k in config.stem_kernel):
            raise ValueError(f"stem_kernel must be odd sizes (centred), got {config.stem_kernel}")
        for i, (out_ch, stride) in enumerate(zip(config.channels, strides, strict=True)):
            kernel = config.stem_kernel if i == 0 else (3, 3, 3)
            encoder += [
                nn.Conv3d(in_ch, out_ch, kernel_size=kernel, stride=stride,
                          padding=(kernel[0] // 2, kernel[1] // 2, kernel[2] // 2), bias=False),
                nn.BatchNorm3d(out_ch),
                nn.ReLU(inplace=True),
            ]
            encoder += [Bottleneck3d(out_ch) for _ in range(config.stage_blocks[i] if config.stage_blocks else 0)]
            in_ch = out_ch
        self.encoder: nn.Module = nn.Sequential(*encoder)
        self.pool = nn.AdaptiveAvgPool3d(config.pool_size)
        pooled = config.channels[-1] * config.pool_size[0] * config.pool_size[1] * config.pool_size[2]
        self.to_latent: nn.Module = nn.Linear(pooled, config.latent_dim)

        seed = config.seed_channels * grid[0] * grid[1] * grid[2]
        self.from_latent = nn.Linear(config.latent_dim, seed)
        self.seed_expand = nn.Sequential(
            nn.Conv3d(config.seed_channels, config.channels[-1], kernel_size=1, bias=False),
            nn.BatchNorm3d(config.channels[-1]),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.ModuleList()
        out_channels = [*reversed(config.channels[:-1]), config.in_channels]
        in_ch = config.channels[-1]
        for i, (out_ch, stride) in enumerate(zip(out_channels, reversed(strides), strict=True)):
            kernel = (max(3, stride[0]), max(3, stride[1]), max(3, stride[2]))
            padding = ((kernel[0] - stride[0] + 1) // 2, (kernel[1] - stride[1] + 1) // 2, (kernel[2] - stride[2] + 1) // 2)
            last = i == len(out_channels) - 1
            self.decoder.append(
                nn.ModuleDict(
                    {
                        "deconv": nn.ConvTranspose3d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=last),
                        "post": nn.Sigmoid() if last else nn.Sequential(nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)),
                    }
                )
            )
            in_ch = out_ch

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` normalised float -> latent ``[B, latent_dim]``."""
        if x.dim() != 5:
            raise ValueError(f"expected a batch of clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        features = self.encoder(self.encoder_input(x))  # [B, 512, t, h, w]
        pooled = self.pool(features).flatten(1)  # [B, 512 * prod(pool_size)]
        return self.to_latent(pooled)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` normalised clips -> what the first convolution takes (:func:`conv_input`)."""
        return conv_input(x, self.config.input_mode)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, latent_dim]`` -> reconstruction ``[B, T, C, H, W]`` in ``[0, 1]``."""
        grid = self._block_shapes[-1]
        x = self.from_latent(z).view(z.shape[0], self.config.seed_channels, *grid)  # [B, seed, t, h, w]
        x = self.seed_expand(x)
        for block, target in zip(self.decoder, reversed(self._block_shapes[:-1]), strict=True):
            assert isinstance(block, nn.ModuleDict)
            x = block["post"](block["deconv"](x, output_size=target))
        return x.permute(0, 2, 1, 3, 4)  # [B, C, T, H, W] -> [B, T, C, H, W]

    def reconstruction_target(self, clips01: torch.Tensor) -> torch.Tensor:
        """The clips in ``[0, 1]`` (RGB mode), or their residual ``0.5 + gain · (x − mean_t x)`` clipped to
        ``[0, 1]`` (the modes with a residual): what ``decode`` is trained to produce."""
        if self.config.input_mode == "rgb":
            return clips01
        residual = clips01 - clips01.mean(dim=1, keepdim=True)
        return (0.5 + self.config.residual_gain * residual).clamp(0.0, 1.0)

    def grow_from(self, start: VideoAutoEncoder3D) -> None:
        """Copy every layer this model shares with ``start`` (usually a smaller model) into it.

        Exact where this model only adds to ``start``: more bottleneck blocks (``stage_blocks``; a new block is
        the identity, :class:`Bottleneck3d`), the frames beside the residual (``rgb+residual`` grown from
        ``residual``; the new input channels start at zero) and a wider stem kernel (``stem_kernel`` no smaller in
        any dimension: the old kernel sits at its centre, the new taps at zero). Then this model computes
        ``start``'s latents and reconstructions exactly until it trains: growing a pretrained network keeps what
        it learned.

        A start, not a copy, where it changes what the layers see: another ``stem_stride`` keeps every weight (a
        convolution's weights do not depend on its stride) but applies them at other positions, and a stage with
        fewer blocks keeps the first ones and skips the rest; the latents change and training has to adapt. The
        decoder's two layers whose shapes follow the stem (``from_latent`` and the last transposed convolution)
        keep their fresh start.

        Raises:
            ValueError: when the two differ in anything else (channels, input size, latent size, a narrower stem
                kernel, an input mode that is not a superset).
        """
        mine, theirs = self.config, start.config
        same = ("num_frames", "input_size", "in_channels", "channels", "block_stride", "pool_size",
                "latent_dim", "seed_channels")
        differ = [name for name in same if getattr(mine, name) != getattr(theirs, name)]
        if any(m < t for m, t in zip(mine.stem_kernel, theirs.stem_kernel, strict=True)):
            differ.append(f"stem_kernel ({theirs.stem_kernel} -> {mine.stem_kernel}: a kernel can only grow)")
        if theirs.input_mode != mine.input_mode and (theirs.input_mode, mine.input_mode) != ("residual", "rgb+residual"):
            differ.append(f"input_mode ({theirs.input_mode} -> {mine.input_mode})")
        if differ:
            raise ValueError(f"cannot grow a {theirs.preset!r} model into this one: {', '.join(differ)} differ")
        stem = next(self.encoder.children())
        with torch.no_grad():
            for mine_stage, their_stage in zip(_stages(self.encoder), _stages(start.encoder), strict=True):
                # zip stops at the shorter stage: extra blocks of ours keep their identity start, extra ones of
                # theirs are left out.
                for target, source in zip(mine_stage, their_stage, strict=False):
                    if target is stem:  # the residual's channels first, the frames' at zero, the kernel centred
                        assert isinstance(target, nn.Conv3d) and isinstance(source, nn.Conv3d)
                        kernel = source.weight.shape[2:]
                        offsets = [(wide - narrow) // 2 for wide, narrow in zip(target.weight.shape[2:], kernel, strict=True)]
                        target.weight.zero_()
                        target.weight[(slice(None), slice(source.weight.shape[1]),
                                       *(slice(o, o + n) for o, n in zip(offsets, kernel, strict=True)))] = source.weight
                    else:
                        target.load_state_dict(source.state_dict())
            for name in ("to_latent", "from_latent", "seed_expand", "decoder"):
                target, source = getattr(self, name), getattr(start, name)
                shapes = {key: tensor.shape for key, tensor in target.state_dict().items()}
                # Only another stem stride changes shapes here: from_latent's (sized by the pre-pool grid) and the
                # last transposed convolution's kernel (it undoes the stem's stride); those keep their fresh start.
                target.load_state_dict({key: tensor for key, tensor in source.state_dict().items()
                                        if shapes.get(key) == tensor.shape}, strict=False)

    def freeze_stages(self, count: int) -> None:
        """Keep the encoder's first ``count`` stages (the stem first) as they are while the rest trains.

        Their weights stop taking gradients and their BatchNorm layers stay in eval mode through ``train()``
        (mmaction2's ``frozen_stages``): fine-tuning then adapts the later, more task-specific stages and skips
        back-propagating through the early, full-resolution ones.

        Raises:
            ValueError: when ``count`` is negative or not below the number of stages (something must train).
        """
        stages = _stages(self.encoder)
        if not 0 <= count < len(stages):
            raise ValueError(f"frozen stages must be 0 to {len(stages) - 1} (this encoder has {len(stages)}), got {count}")
        self.frozen_stages = count
        for i, stage in enumerate(stages):
            for parameter in (p for module in stage for p in module.parameters()):
                parameter.requires_grad_(i >= count)
        self.train(self.training)

    def train(self, mode: bool = True) -> VideoAutoEncoder3D:
        """``nn.Module.train``, with the stages :meth:`freeze_stages` froze kept in eval mode."""
        super().train(mode)
        for stage in _stages(self.encoder)[: self.frozen_stages]:
            for module in stage:
                module.eval()
        return self

    def encoder_modules(self) -> list[nn.Module]:
        """The modules that run on the edge (encoder, pool, projection): what freezing or export touches."""
        return [self.encoder, self.pool, self.to_latent]
