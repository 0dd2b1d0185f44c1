"""The ILA glue (``python:tinyact.teachers.ila:build``) against a stand-in checkout with ILA's interface.

The stand-in mirrors what the glue relies on in Francis-Rings/ILA: ``models/xclip.py`` with
``build_model(state_dict, T, logger, mit_layers, prompts_layers)`` that loads with ``strict=False``, an
``XCLIP.forward(image, text)`` returning ``(logit_scale · cos-sim to text features, losses)``, a
``cache_text`` that flips the model to train mode, ``visual.transformer.resblocks[i].message_attn.is_training``,
``clip.tokenize`` and ``labels/kinetics_400_labels.csv``; checkpoints are ``{"model": …, "config": …}``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinyact.teachers import TeacherError, load_teacher
from tinyact.teachers.ila import ILA_MEAN, ILA_STD

XCLIP_STANDIN = '''
import torch
from torch import nn

import clip
from clip.model import Identity  # ILA's import cycle: clip -> models.xclip -> clip.model


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.message_attn = Identity()
        self.message_attn.is_training = True


class Visual(nn.Module):
    def __init__(self, width, patch, grid, embed):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([Block()])
        self.proj = nn.Parameter(torch.randn(width, embed))

    def forward(self, x):
        return self.conv1(x).flatten(2).mean(2) @ self.proj, None, []


class MIT(nn.Module):
    def __init__(self, embed, layers):
        super().__init__()
        self.resblocks = nn.ModuleList([nn.Linear(embed, embed) for _ in range(layers)])

    def forward(self, x):
        x = x.mean(1)
        for layer in self.resblocks:
            x = x + layer(x)
        return x


class XCLIP(nn.Module):
    def __init__(self, embed, width, patch, grid, T, mit_layers):
        super().__init__()
        self.T = T
        self.visual = Visual(width, patch, grid, embed)
        self.mit = MIT(embed, mit_layers)
        self.token_embedding = nn.Embedding(1000, embed)
        self.text_projection = nn.Parameter(torch.randn(embed, embed))
        self.prompts_generator = nn.Dropout(0.5)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.cache_text_features = None

    def encode_text(self, text):
        return self.token_embedding(text).mean(1) @ self.text_projection

    def cache_text(self, text):
        self.eval()
        with torch.no_grad():
            if self.cache_text_features is None:
                self.cache_text_features = self.encode_text(text)
        self.train()
        return self.cache_text_features

    def encode_video(self, image):
        b, t, c, h, w = image.size()
        cls, _, losses = self.visual(image.reshape(-1, c, h, w))
        return self.mit(cls.view(b, t, -1)), None, losses

    def forward(self, image, text):
        video, _, losses = self.encode_video(image)
        text = self.prompts_generator(self.cache_text(text))
        video = video / video.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * video @ text.t(), losses


def build_model(state_dict, T=8, droppath=0.0, use_checkpoint=False, logger=None, prompts_alpha=1e-1,
                prompts_layers=2, use_cache=True, mit_layers=4):
    width, _, patch, _ = state_dict["visual.conv1.weight"].shape
    grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    embed = state_dict["text_projection"].shape[1]
    model = XCLIP(embed, width, patch, grid, T, mit_layers)
    msg = model.load_state_dict(state_dict, strict=False)
    logger.info(f"load pretrained CLIP: {msg}")
    return model.eval()
'''

CLIP_STANDIN = '''
import torch

from models.xclip import build_model  # noqa: F401  (as ILA's clip/clip.py does)


def tokenize(texts, context_length=77):
    texts = [texts] if isinstance(texts, str) else texts
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [ord(ch) % 1000 for ch in text][:context_length]
        out[i, : len(ids)] = torch.tensor(ids)
    return out
'''


@pytest.fixture
def ila_checkout(tmp_path, monkeypatch):
    repo = tmp_path / "ILA"
    (repo / "models").mkdir(parents=True)
    (repo / "clip").mkdir()
    (repo / "labels").mkdir()
    (repo / "models" / "__init__.py").write_text("")
    (repo / "models" / "xclip.py").write_text(textwrap.dedent(XCLIP_STANDIN))
    (repo / "clip" / "__init__.py").write_text(textwrap.dedent(CLIP_STANDIN))
    (repo / "clip" / "model.py").write_text("from torch.nn import Identity  # noqa: F401\n")
    (repo / "labels" / "kinetics_400_labels.csv").write_text("id,name\n0,abseiling\n1,air drumming\n2,waving\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield repo
    for name in [m for m in sys.modules if m in ("models", "clip") or m.startswith(("models.", "clip."))]:
        del sys.modules[name]


def _checkpoint(repo: Path, out: Path, mit_layers: int = 1) -> Path:
    sys.path.insert(0, str(repo))
    import clip  # noqa: F401  (first, as ILA does)
    from models import xclip  # the stand-in

    torch.manual_seed(0)
    model = xclip.XCLIP(embed=8, width=6, patch=8, grid=2, T=4, mit_layers=mit_layers)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state, "optimizer": {}, "epoch": 3, "config": {"DATA": {"NUM_FRAMES": 4, "INPUT_SIZE": 16}}}, out)
    return out


def test_ila_teacher_from_checkout(ila_checkout, tmp_path):
    ckpt = _checkpoint(ila_checkout, tmp_path / "ila.pth")
    teacher = load_teacher(f"python:tinyact.teachers.ila:build?repo={ila_checkout}&checkpoint={ckpt}&device=cpu")
    assert teacher.num_frames == 4 and teacher.size == 16 and teacher.embedding_dim == 8
    assert teacher.label_names == ["abseiling", "air drumming", "waving"]
    assert teacher.module.visual.transformer.resblocks[0].message_attn.is_training is False

    clips = torch.randint(0, 256, (2, 8, 3, 16, 16), dtype=torch.uint8)
    first, second = teacher(clips), teacher(clips)
    assert first.logits.shape == (2, 3) and first.embedding.shape == (2, 8)
    assert torch.equal(first.logits, second.logits)  # stays in eval mode: the dropout never fires
    assert not teacher.module.training

    # ILA's input: every other frame, ImageNet statistics on the 0–255 scale, [B, T, 3, H, W]
    x = (clips[:, 1::2].float() - torch.tensor(ILA_MEAN).view(3, 1, 1)) / torch.tensor(ILA_STD).view(3, 1, 1)
    model = teacher.module
    with torch.no_grad():
        video = model.mit(model.visual(x.reshape(-1, 3, 16, 16))[0].view(2, 4, -1))
        text = model.cache_text_features
        expected = model.logit_scale.exp() * (video / video.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).t()
    assert torch.allclose(first.logits, expected, atol=1e-4)
    assert torch.allclose(first.embedding, video, atol=1e-5)


def test_ila_rejects_mismatched_checkpoint(ila_checkout, tmp_path):
    ckpt = _checkpoint(ila_checkout, tmp_path / "ila.pth", mit_layers=1)
    with pytest.raises(TeacherError, match="missing weights"):
        load_teacher(f"python:tinyact.teachers.ila:build?repo={ila_checkout}&checkpoint={ckpt}&mit_layers=2&device=cpu")
    with pytest.raises(TeacherError, match="trained with 4 frames"):
        load_teacher(f"python:tinyact.teachers.ila:build?repo={ila_checkout}&checkpoint={ckpt}&frames=16&device=cpu")
    with pytest.raises(TeacherError, match="not a checkout"):
        load_teacher(f"python:tinyact.teachers.ila:build?repo={tmp_path}&checkpoint={ckpt}")
