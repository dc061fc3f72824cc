"""Model files: atomic writes, safe loads, export for inference.

A model file holds ``asr`` and ``state_dict`` (the recogniser's weights and normalisation statistics). ``asr``
is plain data: ``spec``, the versioned :class:`asr.spec.ModelSpec` that is all loading needs, and
``training_config``, the training config as a dict, kept for provenance and never read to load. Lightning's
training checkpoints carry the same two entries (the weights under the ``recognizer.`` prefix) plus optimiser
and loop state. Files written before the spec existed (an ``asr`` entry of ``config`` and ``tokenizer``, no
version) still load: their spec is read from the stored config's feature and model sections, the tokenizer
and the normalisation statistics in the weights. Everything is loaded with ``weights_only=True``: a file
that would need to run code to load is refused.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from asr.config import Config, to_dict
from asr.errors import ConfigError, ModelFileError, OutputError, first_line
from asr.outputs import refuse_overwrite, write_bytes_atomic
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.text import TokenizerError

PREFIX = "recognizer."
TRAINING_KEYS = ("optimizer_states", "loops")  # what only a training checkpoint (Lightning's) holds


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a full disk leaves the previous file at ``path`` untouched; a write that fails raises
    :class:`asr.errors.OutputError` (an ``OSError``) with a one-line message naming ``path``.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def _unpickler_detail(e: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal is a paragraph; its one informative line names the offending object."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("Unsupported", "Trying to", "Can only"))]
    return (detail or lines or ["unpickling failed"])[0]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, not a weights-only checkpoint ({_unpickler_detail(e)}): "
            "the file is corrupt or holds objects that would run code when loaded"
        ) from None
    except Exception as e:  # torch.load on arbitrary bytes raises many types (struct.error, EOFError, ...)
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(e)})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("asr"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an asr checkpoint (no 'asr' and 'state_dict' entries)")
    return ckpt


def recognizer_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The recogniser's weights from a training or an exported checkpoint."""
    state = ckpt["state_dict"]
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    return state


def _legacy_spec(entry: dict[str, Any], state: dict[str, torch.Tensor]) -> ModelSpec:
    """The spec of a file from before the spec: the stored training config's feature and model sections (less
    its training-only settings), the tokenizer, and the normalisation statistics of the weights."""
    config = entry["config"]
    if not isinstance(config, dict) or not isinstance(config.get("features"), dict):
        raise ConfigError("stored config: no features section")
    features = {k: v for k, v in config["features"].items() if k != "cmvn_max_utts"}
    mean, std = state.get("frontend.cmvn.mean"), state.get("frontend.cmvn.std")
    cmvn = None if mean is None or std is None else {"mean": mean.tolist(), "std": std.tolist()}
    spec = {"version": 1, "features": features, "model": config.get("model"), "tokenizer": entry["tokenizer"]}
    return ModelSpec.from_dict(spec | {"cmvn": cmvn})


def model_spec(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> ModelSpec:
    """The spec of a loaded checkpoint (of either format); :class:`CheckpointError` naming ``path``."""
    entry = ckpt["asr"]
    try:
        if "spec" in entry:
            return ModelSpec.from_dict(entry["spec"])
        if "config" in entry and "tokenizer" in entry:
            return _legacy_spec(entry, recognizer_state(ckpt))
    except ConfigError as e:
        raise CheckpointError(f"{path}: impossible model settings ({first_line(e)})") from None
    raise CheckpointError(f"{path}: not an asr checkpoint (no model spec in its 'asr' entry)")


def training_config(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The training config a checkpoint was made with, as plain data (provenance only), if it has one."""
    entry = ckpt["asr"]
    return entry.get("training_config") if "spec" in entry else entry.get("config")


def recognizer_from_checkpoint(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> Recognizer:
    """The :class:`Recognizer` of a loaded checkpoint, in eval mode on the CPU."""
    spec = model_spec(ckpt, path)
    try:
        model = Recognizer(spec)
        model.load_state_dict(recognizer_state(ckpt))
    except (TokenizerError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(e)})") from None
    return model.eval()


def load_recognizer(path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
    """Load a checkpoint (training or exported) as a :class:`Recognizer` in eval mode on ``device``."""
    return recognizer_from_checkpoint(load_checkpoint(path), path).to(device)


def checkpoint_payload(model: Recognizer, training: Config | dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``asr`` entry of a model file: ``model``'s spec, and the training config it came from."""
    config = to_dict(training) if isinstance(training, Config) else training
    return {"spec": model.spec.to_dict(), "training_config": config}


def is_training_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` holds a training checkpoint (optimiser and loop state: a run resumes from it)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a file torch reads (or not one mmap can): not a checkpoint of ours
        return False
    return isinstance(ckpt, dict) and any(k in ckpt for k in TRAINING_KEYS)


def _mean_state(first: dict[str, Any], paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The mean of the recogniser weights of ``paths`` (checkpoint averaging), ``first`` being ``paths[0]``
    already loaded; all must hold a model of one spec. Tensors that are not floating point (counters) are the
    last file's."""
    spec, total = model_spec(first, paths[0]), {}
    for path, ckpt in zip(paths, chain([first], map(load_checkpoint, paths[1:]))):  # one file at a time
        state = recognizer_state(ckpt)
        if model_spec(ckpt, path) != spec or (total and state.keys() != total.keys()):
            raise CheckpointError(f"{path}: a different model than {paths[0]}; only like models average")
        for k, v in state.items():
            total[k] = total.get(k, 0) + v.double() if v.is_floating_point() else v
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}


def export_model(src: str | Path | Sequence[str | Path], dest: str | Path) -> None:
    """Write an inference-only model file (spec, training config, weights) from a checkpoint, or from the mean
    of several checkpoints' weights (checkpoint averaging; they must share one model spec).

    Refused with :class:`OutputError`, before anything is read, when ``dest`` is one of the sources or a
    training checkpoint: replacing one would leave its run unable to resume.
    """
    paths = [Path(src)] if isinstance(src, (str, Path)) else [Path(s) for s in src]
    if not paths:
        raise CheckpointError("no checkpoints to export")
    refuse_overwrite(dest, paths)
    if Path(dest).is_file() and is_training_checkpoint(dest):
        raise OutputError(
            f"{dest}: is a training checkpoint; refusing to replace it with an inference-only model"
        )
    ckpt = load_checkpoint(paths[0])
    model = recognizer_from_checkpoint(ckpt, paths[0])
    if len(paths) > 1:
        model.load_state_dict(_mean_state(ckpt, paths))
    save_atomic(
        {"asr": checkpoint_payload(model, training_config(ckpt)), "state_dict": model.state_dict()}, dest
    )
