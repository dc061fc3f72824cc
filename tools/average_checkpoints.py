"""Average the weights of several checkpoints into one inference model (``model.pt`` format).

Usage:
    python tools/average_checkpoints.py exp/run/checkpoints --last 5 --out exp/run/model_avg5.pt
    python tools/average_checkpoints.py exp/run/checkpoints --best 3 --out exp/run/model_best3.pt
    python tools/average_checkpoints.py a.ckpt b.ckpt c.ckpt --out avg.pt

``--last K`` takes the K checkpoints with the most training steps (keep them with
``trainer.checkpoint_every_n_steps=N trainer.keep_last=K``); ``--best K`` the K with the lowest validation
score, CER unless ``trainer.select_by`` says otherwise (``trainer.keep_best=K``). Checkpoints are loaded
with ``weights_only=True``; all must share one model config.
``--out`` may be neither one of the inputs (through links too) nor any training checkpoint: an averaged,
inference-only model in its place would leave a run unable to resume. Exit codes are ``asr.errors``': 2
usage, 4 a checkpoint that cannot be loaded or averaged, 6 an output refused or not written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from asr.checkpoint import (
    CheckpointError,
    is_training_checkpoint,
    load_checkpoint,
    load_recognizer,
    model_spec,
    recognizer_state,
    save_atomic,
)
from asr.errors import OutputError, run_main
from asr.outputs import refuse_overwrite


def _val_score(ckpt: dict, name: str) -> float | None:
    """The validation score (``trainer.select_by``) the checkpoint file ``name`` was saved for as one of the
    best, else None.

    It is the file's own entry in its validation ModelCheckpoint's best-K table. ``last.ckpt`` and
    ``step-*.ckpt`` carry that callback's state too, but no entry of their own: the current score in it
    belongs to an earlier checkpoint, not to their weights.
    """
    for key, state in ckpt.get("callbacks", {}).items():
        if "'monitor': 'val/" in key:
            for path, score in state.get("best_k_models", {}).items():
                if Path(path).name == name:
                    return float(score)
    return None


def select(paths: Sequence[Path], last: int = 0, best: int = 0) -> list[Path]:
    """Checkpoint files (folders expanded to their ``*.ckpt``) narrowed to the ``last`` or ``best`` K."""
    files = sorted({f for p in paths for f in (sorted(p.glob("*.ckpt")) if p.is_dir() else [p])})
    if not (last or best):
        return files
    info = {f: load_checkpoint(f) for f in files}
    if last:
        by_step = {int(c.get("global_step", -1)): f for f, c in sorted(info.items()) if f.name != "last.ckpt"}
        return [by_step[s] for s in sorted(by_step)[-last:]]
    scored = sorted((w, str(f)) for f, c in info.items() if (w := _val_score(c, f.name)) is not None)
    return [Path(f) for _, f in scored[:best]]


def average_checkpoints(paths: Sequence[Path]) -> dict:
    """An exported checkpoint whose floating-point weights are the mean of ``paths``' (others: the last's).

    The checkpoints must share one model spec (features, model, tokenizer, normalisation statistics).
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    first, spec = None, None
    for path in paths:
        ckpt = load_checkpoint(path)
        state = recognizer_state(ckpt)
        if first is None:
            first, spec = ckpt["asr"], model_spec(ckpt, path)
            total = {k: v.double() if v.is_floating_point() else v.clone() for k, v in state.items()}
            continue
        if model_spec(ckpt, path) != spec or state.keys() != total.keys():
            raise CheckpointError(f"{path}: a different model than {paths[0]}; only like models average")
        for k, v in state.items():
            total[k] = total[k] + v.double() if v.is_floating_point() else v.clone()
    averaged = {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}
    return {"asr": first, "state_dict": averaged}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files or folders of them")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--last", type=int, default=0, metavar="K", help="the K with the most steps")
    group.add_argument(
        "--best",
        type=int,
        default=0,
        metavar="K",
        help="the K with the best validation score (trainer.select_by)",
    )
    p.add_argument("--out", type=Path, required=True, help="the averaged model (load it like model.pt)")
    args = p.parse_args(argv)
    if args.last < 0 or args.best < 0:
        p.error("--last and --best take a count of at least 1")
    missing = [c for c in args.checkpoints if not c.exists()]
    if missing:
        raise CheckpointError(f"{missing[0]}: checkpoint not found")
    chosen = select(args.checkpoints, args.last, args.best)
    refuse_overwrite(args.out, [*args.checkpoints, *chosen])
    if args.out.is_file() and is_training_checkpoint(args.out):
        raise OutputError(
            f"{args.out}: is a training checkpoint; refusing to replace it with an averaged model"
        )
    save_atomic(average_checkpoints(chosen), args.out)
    load_recognizer(args.out)  # the result must load like any exported model
    print(f"averaged {len(chosen)} checkpoint(s): {', '.join(c.name for c in chosen)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
