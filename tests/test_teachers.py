"""Teachers: preprocessing, label mapping, the spec loaders (torchscript, python, hf) and cached logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from tinyact.data.manifest import Manifest, ManifestEntry
from tinyact.errors import TinyActError
from tinyact.teachers import (
    CachedLogits,
    ModuleTeacher,
    Preprocess,
    TeacherError,
    TeacherOutput,
    cache_teacher,
    load_teacher,
    map_labels,
    normalize_label,
    register_teacher_scheme,
    resample_frames,
)
from tinyact.teachers.base import normalisation_stats
from tinyact.teachers.options import read_label_file


class MeanTeacher(nn.Module):
    """Logits from per-frame mean intensity: deterministic, so tests can check the preprocessing."""

    label_names = ["Push_Up", "jumping jacks", "waving"]
    num_frames = 4
    size = 16

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.arange(12, dtype=torch.float32).view(3, 4) / 10)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = x.mean(dim=(2, 3, 4))  # [B, T, 3, S, S] -> [B, T]
        return self.head(features), features


def factory(**kwargs):
    """``python:`` factory used by the tests (kwargs arrive as strings)."""
    module = MeanTeacher()
    if kwargs.get("drop_labels") == "1":
        module.label_names = []
    return module


# --- preprocessing ---------------------------------------------------------------------------------------------


def test_resample_frames_both_ways():
    clips = torch.arange(16).view(1, 16, 1, 1, 1)
    assert resample_frames(clips, 8).flatten().tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert resample_frames(clips[:, :8], 16).flatten().tolist() == [i // 2 for i in range(16)]
    assert resample_frames(clips, 16) is clips


def test_preprocess_scales_agree():
    """ImageNet stats on [0, 1] and the same stats on a 0–255 scale (ILA / mmaction2) give the same input."""
    clips = torch.randint(0, 256, (2, 6, 3, 20, 24), dtype=torch.uint8)
    unit = Preprocess(num_frames=3, size=16)(clips, torch.device("cpu"), torch.float32)
    mean255 = tuple(255 * m for m in normalisation_stats("imagenet")[0])
    std255 = tuple(255 * s for s in normalisation_stats("imagenet")[1])
    scaled = Preprocess(num_frames=3, size=16, mean=mean255, std=std255, input_scale=255)(clips, torch.device("cpu"), torch.float32)
    assert unit.shape == (2, 3, 3, 16, 16)
    assert torch.allclose(unit, scaled, atol=1e-4)
    white = Preprocess(num_frames=2, size=8, layout="BCTHW")(torch.full((1, 4, 3, 8, 8), 255, dtype=torch.uint8), torch.device("cpu"), torch.float32)
    assert white.shape == (1, 3, 2, 8, 8)
    assert white[0, 0].mean().item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


# --- labels ------------------------------------------------------------------------------------------------------


def test_label_mapping_by_normalised_name(caplog):
    assert normalize_label("  Riding_a-Bike ") == "riding a bike"
    teacher = ["riding a bike", "push up", "waving", "abseiling"]
    dataset = ["Push_Up", "Riding-A-Bike", "swimming", "wave"]
    label_map = map_labels(teacher, dataset, aliases={"wave": "waving"})
    assert label_map.teacher_index.tolist() == [1, 0, -1, 2]
    assert label_map.unmapped == ["swimming"] and label_map.unused == ["abseiling"]
    assert "swimming" in caplog.text  # reported
    logits = torch.tensor([[1.0, 2.0, 3.0, -4.0]])
    assert label_map.apply(logits).tolist() == [[2.0, 1.0, -4.0, 3.0]]  # unmapped -> row minimum
    assert map_labels([], ["a", "b"]).is_identity
    with pytest.raises(TinyActError, match="another dataset"):
        map_labels(["x", "y"], ["a", "b"])
    with pytest.raises(TinyActError, match="normalise"):
        map_labels(["push up", "Push_Up"], ["a"])


def test_label_files(tmp_path):
    (tmp_path / "k.csv").write_text("id,name\n1,air drumming\n0,abseiling\n")
    (tmp_path / "k.txt").write_text("abseiling\n\nair drumming\n")
    (tmp_path / "k.json").write_text(json.dumps(["abseiling", "air drumming"]))
    for name in ("k.csv", "k.txt", "k.json"):
        assert read_label_file(tmp_path / name) == ["abseiling", "air drumming"]


# --- loaders -----------------------------------------------------------------------------------------------------


def test_torchscript_round_trip(tmp_path):
    module = MeanTeacher().eval()
    scripted = torch.jit.script(module)
    scripted.save(str(tmp_path / "t.pt"))
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    teacher = load_teacher(f"torchscript:{tmp_path / 't.pt'}?frames=4&size=16&labels={tmp_path / 'labels.txt'}&device=cpu")
    clips = torch.randint(0, 256, (2, 8, 3, 16, 16), dtype=torch.uint8)
    out = teacher(clips)
    assert isinstance(out, TeacherOutput) and out.logits.shape == (2, 3) and out.embedding.shape == (2, 4)
    assert teacher.label_names == ["a", "b", "c"] and teacher.embedding_dim == 4
    expected = module(Preprocess(num_frames=4, size=16)(clips, torch.device("cpu"), torch.float32))[0]
    assert torch.allclose(out.logits, expected, atol=1e-5)
    with pytest.raises(TeacherError, match="not a TorchScript"):
        (tmp_path / "junk.pt").write_bytes(b"nope")
        load_teacher(f"torchscript:{tmp_path / 'junk.pt'}")
    with pytest.raises(TeacherError, match="not found"):
        load_teacher(f"torchscript:{tmp_path / 'missing.pt'}")


def test_python_specs(tmp_path, monkeypatch):
    source = Path(__file__).read_text()
    (tmp_path / "my_teacher.py").write_text(source.split("# --- preprocessing")[0])
    teacher = load_teacher(f"python:{tmp_path / 'my_teacher.py'}:factory?device=cpu")
    assert teacher.label_names == MeanTeacher.label_names and teacher.num_frames == 4 and teacher.size == 16
    assert teacher(torch.zeros(1, 4, 3, 16, 16, dtype=torch.uint8)).logits.shape == (1, 3)
    # dotted module path; spec options override attributes; unknown options go to the factory
    monkeypatch.syspath_prepend(str(tmp_path))
    teacher = load_teacher("python:my_teacher:factory?frames=2&size=8&mean=0.5,0.5,0.5&std=clip&drop_labels=1")
    assert teacher.num_frames == 2 and teacher.size == 8 and teacher.label_names == []
    assert teacher.preprocess.mean == (0.5, 0.5, 0.5) and teacher.preprocess.std == normalisation_stats("clip")[1]
    with pytest.raises(TeacherError, match="rejected its arguments"):
        load_teacher("python:my_teacher:MeanTeacher?bogus=1")
    with pytest.raises(TeacherError, match="cannot import"):
        load_teacher("python:no_such_module_xyz:factory")
    with pytest.raises(TeacherError, match="scheme"):
        load_teacher("nothing-here")
    # a factory may return a ready Teacher; custom schemes
    ready = ModuleTeacher(MeanTeacher(), label_names=["x", "y", "z"], preprocess=Preprocess(4, 16), device="cpu")
    register_teacher_scheme("fixed", lambda rest: ready)
    assert load_teacher("fixed:anything") is ready


def _save_hf(folder: Path, model, processor: dict) -> None:
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))


@pytest.mark.slow
def test_hf_videomae_and_timesformer(tmp_path):
    from transformers import (
        TimesformerConfig,
        TimesformerForVideoClassification,
        VideoMAEConfig,
        VideoMAEForVideoClassification,
    )

    labels = {0: "abseiling", 1: "air drumming", 2: "waving"}
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37,
            "image_size": 16, "patch_size": 8, "id2label": labels, "label2id": {v: k for k, v in labels.items()}}
    torch.manual_seed(0)
    videomae = VideoMAEForVideoClassification(VideoMAEConfig(num_frames=4, tubelet_size=2, **tiny)).eval()
    _save_hf(tmp_path / "videomae", videomae, {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
                                               "crop_size": {"height": 16, "width": 16}, "rescale_factor": 1 / 255})
    timesformer = TimesformerForVideoClassification(TimesformerConfig(num_frames=2, **tiny)).eval()
    _save_hf(tmp_path / "timesformer", timesformer, {"image_mean": [0.45, 0.45, 0.45], "image_std": [0.225, 0.225, 0.225]})

    clips = torch.randint(0, 256, (3, 8, 3, 24, 24), dtype=torch.uint8)
    for name, model, frames in (("videomae", videomae, 4), ("timesformer", timesformer, 2)):
        teacher = load_teacher(f"hf:{tmp_path / name}?device=cpu")
        assert teacher.num_frames == frames and teacher.size == 16
        assert teacher.label_names == ["abseiling", "air drumming", "waving"]
        out = teacher(clips)
        assert out.logits.shape == (3, 3) and out.embedding.shape == (3, 32) and teacher.embedding_dim == 32
        # same logits as feeding the model by hand with the processor's statistics
        processor = json.loads((tmp_path / name / "preprocessor_config.json").read_text())
        x = Preprocess(frames, 16, tuple(processor["image_mean"]), tuple(processor["image_std"]))(clips, torch.device("cpu"), torch.float32)
        with torch.no_grad():
            assert torch.allclose(out.logits, model(pixel_values=x).logits, atol=1e-4)
    with pytest.raises(TeacherError, match="no config.json"):
        load_teacher(f"hf:{tmp_path}")
    with pytest.raises(TeacherError, match="labels= is for X-CLIP"):
        load_teacher(f"hf:{tmp_path / 'videomae'}?labels=x.txt")


@pytest.mark.slow
def test_hf_xclip_zero_shot(tmp_path):
    from transformers import CLIPTokenizer, XCLIPConfig, XCLIPModel
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())  # a byte-level vocabulary without merges: tiny but real BPE
    vocab = {token: i for i, token in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = XCLIPConfig(
        text_config={"vocab_size": len(vocab), "max_position_embeddings": 32, **small},
        vision_config={"image_size": 16, "patch_size": 8, "num_frames": 2, "mit_hidden_size": 32, "mit_intermediate_size": 37,
                       "mit_num_hidden_layers": 1, "mit_num_attention_heads": 2, **small},
        projection_dim=32, prompt_layers=1,
    )
    torch.manual_seed(0)
    XCLIPModel(config).save_pretrained(tmp_path / "xclip")
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(tmp_path / "xclip")
    (tmp_path / "classes.txt").write_text("push up\nwaving\nclapping\n")
    with pytest.raises(TeacherError, match="zero-shot"):
        load_teacher(f"hf:{tmp_path / 'xclip'}")
    teacher = load_teacher(f"hf:{tmp_path / 'xclip'}?labels={tmp_path / 'classes.txt'}&prompt=a video of {{}}&device=cpu")
    assert teacher.num_frames == 2 and teacher.size == 16 and teacher.label_names == ["push up", "waving", "clapping"]
    assert teacher.preprocess.mean == normalisation_stats("clip")[0]  # X-CLIP's default statistics
    out = teacher(torch.randint(0, 256, (2, 6, 3, 20, 20), dtype=torch.uint8))
    assert out.logits.shape == (2, 3) and out.embedding.shape == (2, 32) and torch.isfinite(out.logits).all()


# --- cached logits -----------------------------------------------------------------------------------------------


def test_cached_logits_round_trip(tmp_path):
    cached = CachedLogits(
        clip_ids=["a", "b"], logits=np.array([[1, 2, 3], [4, 5, 6]], np.float32), label_names=["x", "y", "z"],
        embeddings=np.ones((2, 5), np.float32), teacher="python:m:f",
    )
    loaded = CachedLogits.load(cached.save(tmp_path / "t.npz"))
    assert loaded.clip_ids.tolist() == ["a", "b"] and loaded.label_names == ["x", "y", "z"] and loaded.teacher == "python:m:f"
    assert np.array_equal(loaded.logits, cached.logits) and loaded.embedding_dim == 5
    logits, emb = loaded.lookup(["b", "a"])
    assert logits.tolist() == [[4, 5, 6], [1, 2, 3]] and emb.shape == (2, 5)
    mapped = loaded.for_dataset(["Z", "x"])
    assert mapped.label_names == ["Z", "x"] and mapped.logits.tolist() == [[3, 1], [6, 4]]
    with pytest.raises(TinyActError, match="no cached teacher logits"):
        loaded.lookup(["c"])
    with pytest.raises(TinyActError, match="inconsistent"):
        CachedLogits(["a"], np.zeros((1, 2), np.float32), ["x"])


def _manifest(tmp_path: Path, make_video, n: int = 5, broken: bool = True) -> Path:
    entries = []
    for i in range(n):
        make_video(f"v{i}.mp4", n_frames=12 + i, height=20, width=24)
        entries.append(ManifestEntry(f"v{i}.mp4", ["waving", "push up"][i % 2], "train", f"clip{i}"))
    if broken:
        (tmp_path / "bad.mp4").write_bytes(b"not a video")
        entries.append(ManifestEntry("bad.mp4", "waving", "val", "clipbad"))
    return Manifest(entries, tmp_path).write(tmp_path / "manifest.csv")


class CountingTeacher(ModuleTeacher):
    calls = 0
    fail_after: int | None = None

    def __call__(self, clips):
        if self.fail_after is not None and CountingTeacher.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        CountingTeacher.calls += 1
        return super().__call__(clips)


def test_cache_teacher_resumes_and_skips_bad_videos(tmp_path, make_video):
    manifest = Manifest.read(_manifest(tmp_path, make_video))
    teacher = CountingTeacher(MeanTeacher(), label_names=MeanTeacher.label_names, preprocess=Preprocess(4, 16), device="cpu")
    out = tmp_path / "teacher.npz"
    CountingTeacher.calls, CountingTeacher.fail_after = 0, 2
    with pytest.raises(RuntimeError, match="simulated"):
        cache_teacher(teacher, manifest, None, out, batch_size=2, parts_every=1)
    assert not out.exists() and len(list((tmp_path / "teacher.npz.parts").glob("part-*.npz"))) == 2
    CountingTeacher.calls, CountingTeacher.fail_after = 0, None
    result = cache_teacher(teacher, manifest, None, out, batch_size=2, parts_every=1)
    assert CountingTeacher.calls == 1  # only the last batch was left (clip4 + the broken file)
    assert result.clip_ids.tolist() == [f"clip{i}" for i in range(5)]  # manifest order, broken clip skipped
    assert result.logits.shape == (5, 3) and result.embedding_dim == 4
    assert not (tmp_path / "teacher.npz.parts").exists()
    # the rows are what the teacher gives for each clip on its own
    from tinyact.data.datasets import ClipDataset
    from tinyact.data.video import ClipSampling

    clip3 = ClipDataset(manifest, ClipSampling(num_frames=4, size=16))[3][0]
    assert np.allclose(result.lookup(["clip3"])[0].numpy(), teacher(clip3[None]).logits.numpy(), atol=1e-5)
    calls = CountingTeacher.calls
    again = cache_teacher(teacher, manifest, None, out)  # complete file: nothing to do
    assert CountingTeacher.calls == calls and np.array_equal(again.logits, result.logits)
    mapped = CachedLogits.load(out).for_dataset(manifest.label_names)  # ["push up", "waving"]
    assert np.array_equal(mapped.logits, result.logits[:, [0, 2]])


def test_cli_teacher_cache(tmp_path, make_video):
    from tinyact.cli import app

    manifest = _manifest(tmp_path, make_video, n=3, broken=False)
    (tmp_path / "spec_module.py").write_text(Path(__file__).read_text().split("# --- preprocessing")[0])
    spec = f"python:{tmp_path / 'spec_module.py'}:factory?device=cpu"
    out = tmp_path / "cli.npz"
    result = CliRunner().invoke(app, ["teacher", "cache", "--teacher", spec, "--manifest", str(manifest), "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    cached = CachedLogits.load(out)
    assert len(cached) == 3 and cached.label_names == MeanTeacher.label_names and cached.teacher == spec
    shown = CliRunner().invoke(app, ["teacher", "show", str(out)])
    assert shown.exit_code == 0 and "3 clips" in shown.output
    other = CliRunner().invoke(app, ["teacher", "cache", "--teacher", spec + "&frames=2", "--manifest", str(manifest), "--out", str(out)])
    assert other.exit_code == 2 and "another teacher" in other.output
    bad = CliRunner().invoke(app, ["teacher", "cache", "--teacher", "nope:x", "--manifest", str(manifest), "--out", str(out)])
    assert bad.exit_code == 2 and "unknown teacher scheme" in bad.output


def test_parse_spec_keeps_paths_intact():
    from tinyact.teachers import parse_spec

    assert parse_spec("python:a.b:make?repo=/x/Foo+Bar/r&k=a%26b%3Dc&empty=") == (
        "python", "a.b:make", {"repo": "/x/Foo+Bar/r", "k": "a&b=c", "empty": ""}
    )
    with pytest.raises(TeacherError, match="key=value"):
        parse_spec("hf:/m?oops")


def test_teacher_outputs_work_as_loss_targets():
    """Teacher outputs feed losses that are backpropagated (no inference-mode tensors)."""
    from tinyact.training.distill import DistillationLoss, FeatureDistillation

    teacher = ModuleTeacher(MeanTeacher(), preprocess=Preprocess(4, 16), device="cpu")
    out = teacher(torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8))
    student = torch.zeros(2, 3, requires_grad=True)
    feature = FeatureDistillation(5, 4)
    total = DistillationLoss()(student, out.logits, torch.tensor([0, 1]))["total"] + feature(torch.ones(2, 5), out.embedding)
    total.backward()
    assert student.grad is not None and feature.proj.weight.grad is not None
