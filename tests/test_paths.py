"""The data directory and the one atomic-write helper."""

from __future__ import annotations

import pytest

from tinyact.paths import atomic_path, atomic_write_text, data_home, temporary_name


def test_data_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYACT_HOME", str(tmp_path / "home"))
    assert data_home() == tmp_path / "home"


def test_the_file_appears_whole_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "model.pt"
    with atomic_path(target, durable=True) as tmp:
        assert tmp.parent == target.parent and tmp.name == "model.pt.tmp"
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new" and not tmp.exists()

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"new" and not tmp.exists()  # the old file stays, no temporary is left


def test_suffix_kept_for_writers_that_choose_the_format_by_extension(tmp_path):
    assert temporary_name(tmp_path / "x.npz", keep_suffix=True).name == "x.npz.tmp.npz"
    assert atomic_write_text(tmp_path / "a.json", "{}").read_text() == "{}"
