"""Average the weights of several checkpoints into one inference model (``model.pt`` format).

Usage:
    python tools/average_checkpoints.py exp/run/checkpoints --last 5 --out exp/run/model_avg5.pt
    python tools/average_checkpoints.py exp/run/checkpoints --best 3 --out exp/run/model_best3.pt
    python tools/average_checkpoints.py a.ckpt b.ckpt c.ckpt --out avg.pt

``--last K`` takes the K checkpoints with the most training steps (keep them with
``trainer.checkpoint_every_n_steps=N trainer.keep_last=K``; ``trainer.average_last=K`` keeps the last K
epochs' and makes their mean the run's ``model.pt``); ``--best K`` the K with the lowest validation
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

from asr.checkpoint import CheckpointError, export_model, load_checkpoint, load_recognizer
from asr.errors import run_main
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
    refuse_overwrite(args.out, args.checkpoints)  # export_model checks the chosen ones, not those passed over
    chosen = select(args.checkpoints, args.last, args.best)
    export_model(chosen, args.out)
    load_recognizer(args.out)  # the result must load like any exported model
    print(f"averaged {len(chosen)} checkpoint(s): {', '.join(c.name for c in chosen)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
