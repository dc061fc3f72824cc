"""The per-user model store: register, list, default, and resolving what --model names."""

from __future__ import annotations

import pytest

from asr import store
from asr.errors import ModelFileError, UsageError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ASR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASR_MODEL", raising=False)
    return tmp_path / "home"


def model_file(tmp_path, name="m.pt", body=b"weights"):
    path = tmp_path / name
    path.write_bytes(body)
    return path


def test_nothing_registered_says_how_to_get_a_model():
    with pytest.raises(UsageError, match="run the demo|python recipes/synthetic/train.py"):
        store.resolve(None)


def test_first_registered_model_is_the_default_and_is_copied(tmp_path, home):
    src = model_file(tmp_path)
    entry = store.register(src, "an4", test_wer=8.28, test_cer=3.43, data="AN4 train")
    src.write_bytes(b"changed later")
    assert store.resolve(None) == home / "models" / "an4" / "model.pt"
    assert store.resolve(None).read_bytes() == b"weights"
    assert entry.size_bytes == len(b"weights") and entry.test_wer == 8.28
    assert [m.name for m in store.list_models()] == ["an4"]


def test_default_env_and_explicit_names(tmp_path, monkeypatch):
    store.register(model_file(tmp_path, "a.pt"), "a")
    store.register(model_file(tmp_path, "b.pt", b"b"), "b")
    assert store.default_name() == "a"
    store.set_default("b")
    assert store.resolve(None).read_bytes() == b"b"
    assert store.resolve("a").read_bytes() == b"weights"
    monkeypatch.setenv("ASR_MODEL", "a")
    assert store.resolve(None).read_bytes() == b"weights"
    path = model_file(tmp_path, "c.pt", b"c")
    assert store.resolve(str(path)) == path  # a path that exists is a path, whatever the store holds


def test_unknown_names_and_bad_names(tmp_path):
    store.register(model_file(tmp_path), "known")
    with pytest.raises(ModelFileError, match="known"):
        store.resolve("unknown")
    with pytest.raises(UsageError, match="no model named"):
        store.set_default("unknown")
    with pytest.raises(UsageError, match="model name"):
        store.register(model_file(tmp_path), "../escape")
    with pytest.raises(ModelFileError, match="not found"):
        store.register(tmp_path / "missing.pt", "x")


def test_a_missing_path_is_left_to_the_loader(tmp_path):
    missing = tmp_path / "sub" / "model.pt"
    assert store.resolve(str(missing)) == missing


def test_an_onnx_export_keeps_its_extension_and_replaces_a_torch_model_of_its_name(tmp_path, home):
    store.register(model_file(tmp_path, "m.pt"), "m")
    store.register(model_file(tmp_path, "m.onnx", b"graph"), "m")
    assert store.resolve("m") == home / "models" / "m" / "model.onnx"
    assert not (home / "models" / "m" / "model.pt").exists()
    assert store.resolve(None).read_bytes() == b"graph"
    assert [m.path.endswith("model.onnx") for m in store.list_models()] == [True]
