"""MLPResNetClassifier: shapes, the block formula, and the model-file round trip."""

from __future__ import annotations

import torch

from tinyact.models import MLPResBlock, MLPResNetClassifier
from tinyact.models.checkpoint import load_model, save_model


def test_shapes_and_embedding():
    model = MLPResNetClassifier(in_dim=64, num_classes=5, dim=32, depth=2).eval()
    z = torch.randn(3, 64)
    logits = model(z)
    assert logits.shape == (3, 5)
    logits2, embedding = model(z, return_embedding=True)
    assert embedding.shape == (3, 32) and model.embedding_dim == 32
    assert torch.allclose(logits, logits2)
    # the embedding is the final LayerNorm's output and the head is a plain Linear on it
    assert torch.allclose(model.head(embedding), logits)
    assert torch.allclose(embedding.mean(1), torch.zeros(3), atol=1e-5)
    assert len(model.blocks) == 2 and model.blocks[0].fc1.out_features == 64  # hidden defaults to 2 × dim


def test_block_matches_formula():
    torch.manual_seed(0)
    block = MLPResBlock(dim=8, hidden=16, dropout=0.5).eval()
    x = torch.randn(4, 8)
    expected = x + block.fc2(torch.nn.functional.gelu(block.fc1(torch.nn.functional.layer_norm(
        x, (8,), block.norm.weight, block.norm.bias))))
    assert torch.allclose(block(x), expected, atol=1e-6)
    block.train()  # dropout active in training: output differs from eval
    assert not torch.allclose(block(x), expected)


def test_rejects_wrong_latent_size():
    model = MLPResNetClassifier(in_dim=16, num_classes=3, dim=8, depth=1)
    try:
        model(torch.randn(2, 32))
    except ValueError as error:
        assert "[B, 16]" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_model_file_round_trip(tmp_path):
    model = MLPResNetClassifier(in_dim=16, num_classes=3, dim=8, depth=3, hidden=12, dropout=0.2).eval()
    digest = save_model(tmp_path / "mlp.pt", model)
    loaded, info = load_model(tmp_path / "mlp.pt")
    assert isinstance(loaded, MLPResNetClassifier) and info["hash"] == digest
    assert loaded.config == model.config
    z = torch.randn(5, 16)
    assert torch.equal(loaded(z), model(z))
