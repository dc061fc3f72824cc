"""The per-user model store: models registered under a name, one of them the default.

Layout, under ``$ASR_HOME`` (default ``~/.cache/asr``)::

    models/<name>/model.pt      the model file (copied in when registered; model.onnx for an ONNX export)
    models/<name>/model.json    name, test WER/CER, training data, date, size, source
    models/DEFAULT              the default model's name

:func:`resolve` turns what a user gave (a path, a name, or nothing) into a model file: a path that exists,
else a registered name, else ``$ASR_MODEL``, else the store's default.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.errors import ModelFileError, UsageError
from asr.outputs import write_text_atomic

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_FILES = ("model.pt", "model.onnx")  # a registered model's file: a torch model or an ONNX export
NO_MODEL = (
    "no model given: pass --model PATH_OR_NAME, set ASR_MODEL, or register one "
    "(the offline demo does: python recipes/synthetic/train.py)"
)


@dataclass
class StoredModel:
    """One registered model, as ``asr models`` lists it."""

    name: str
    path: str
    test_wer: float | None = None  # percent, on the recipe's test set
    test_cer: float | None = None
    data: str = ""  # what it was trained on
    created: str = ""  # ISO date of registration
    size_bytes: int = 0
    source: str = ""  # where it was registered from


def home() -> Path:
    """The store's root: ``$ASR_HOME`` or ``~/.cache/asr``."""
    return Path(os.environ.get("ASR_HOME") or Path.home() / ".cache" / "asr")


def _models() -> Path:
    return home() / "models"


def _model_file(name: str) -> Path | None:
    """The registered model file of ``name``, if there is one."""
    return next((f for f in (_models() / name / n for n in MODEL_FILES) if f.is_file()), None)


def _check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def register(
    model: str | Path,
    name: str,
    test_wer: float | None = None,
    test_cer: float | None = None,
    data: str = "",
    make_default: bool = False,
) -> StoredModel:
    """Copy ``model`` into the store as ``name`` (replacing a model of that name) and describe it.

    The first model registered becomes the default, as does any with ``make_default``.
    """
    src = Path(model)
    if not src.is_file():
        raise ModelFileError(f"{src}: model file not found")
    folder = _models() / _check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / MODEL_FILES[src.suffix == ".onnx"]
    tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    for other in MODEL_FILES:  # a model of the same name in the other format is replaced
        if other != dest.name:
            (folder / other).unlink(missing_ok=True)
    entry = StoredModel(
        name=name,
        path=str(dest),
        test_wer=test_wer,
        test_cer=test_cer,
        data=data,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        size_bytes=dest.stat().st_size,
        source=str(src.resolve()),
    )
    write_text_atomic(folder / "model.json", json.dumps(asdict(entry), indent=2) + "\n")
    if make_default or default_name() is None:
        set_default(name)
    return entry


def list_models() -> list[StoredModel]:
    """Every registered model, by name; entries whose files are missing or unreadable are left out."""
    out = []
    for meta in sorted(_models().glob("*/model.json")):
        try:
            entry = StoredModel(**json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if Path(entry.path).is_file():
            out.append(entry)
    return out


def default_name() -> str | None:
    """The default model's name, if one is set and still registered."""
    try:
        name = (_models() / "DEFAULT").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if _model_file(name) is not None else None


def set_default(name: str) -> None:
    """Make ``name`` (a registered model) the default."""
    if _model_file(_check_name(name)) is None:
        known = ", ".join(m.name for m in list_models()) or "none"
        raise UsageError(f"no model named {name!r} in {_models()} (registered: {known})")
    write_text_atomic(_models() / "DEFAULT", name + "\n")


def resolve(model: str | Path | None) -> Path:
    """The model file for ``model``: an existing path, a registered name, else ``$ASR_MODEL``, else the
    default. A name that is neither an existing path nor registered is an error listing what is."""
    if model is None or str(model) == "":
        model = os.environ.get("ASR_MODEL") or default_name()
        if not model:
            raise UsageError(NO_MODEL)
    path = Path(model)
    if path.exists() or not NAME.match(str(model)):
        return path
    stored = _model_file(str(model))
    if stored is not None:
        return stored
    known = ", ".join(m.name for m in list_models()) or "none registered"
    raise ModelFileError(f"{model}: no such model file, nor a model of that name in {_models()} ({known})")
