"""Time to accuracy on AN4: test WER after training for a fixed wall-clock budget on this machine.

Usage:
    python benchmarks/time_to_accuracy.py --data-dir ../shared/data/an4 [--minutes 3 6] [--seeds 1234 2 3] \
        [key=value ...]

Each budget runs the AN4 recipe (``recipes/an4``, its config unchanged: the 120-epoch schedule) in a fresh
experiment folder, stopped by ``trainer.max_time`` at the budget: the WER a user has at that point of the
standard run. The test WER is greedy, from the best checkpoint by dev WER. Run it alone: a second
CPU-heavy process slows training several-fold.

The issue's reference for deepspeech.pytorch on this CPU: 44.9% WER after 15 minutes (its 5.6 M-parameter
variant) and 86.2% after 30 minutes (its default model); the target is to reach 44.9% in a fifth of 15
minutes, 3 minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_budget(data_dir: Path, minutes: float, exp: Path, overrides: list[str]) -> dict:
    """Train the AN4 recipe for ``minutes`` of wall-clock time; returns its results.json."""
    seconds = round(minutes * 60)
    command = [
        sys.executable,
        str(ROOT / "recipes" / "an4" / "train.py"),
        "--data-dir",
        str(data_dir),
        "--out-dir",
        str(exp / "data"),
        "--exp-dir",
        str(exp),
        "--lm-order",
        "0",
        f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        *overrides,
    ]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    results = json.loads((exp / "results.json").read_text())
    rows = csv.DictReader((exp / "logs" / "metrics.csv").read_text().splitlines())
    results["dev_wer_by_epoch"] = [round(100 * float(r["val/wer"]), 1) for r in rows if r.get("val/wer")]
    return results


def _epochs(checkpoints: list[str]) -> str:
    """The epochs of the model's checkpoints (best-EPOCH-STEP.ckpt, epoch-EPOCH.ckpt): one, or first-last."""
    epochs = [Path(c).stem.split("-")[1] if "-" in Path(c).stem else Path(c).stem for c in checkpoints]
    return epochs[0] if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="the AN4 tree (CMU layout)")
    p.add_argument("--minutes", type=float, nargs="+", default=[3.0])
    p.add_argument("--seeds", type=int, nargs="+", help="one run per seed (default: the recipe's seed)")
    p.add_argument("overrides", nargs="*", help="key=value settings on top of the recipe's config")
    args = p.parse_args()
    seeds = args.seeds or [None]
    print(f"{'budget min':>10}{'seed':>6}{'train s':>9}{'epoch(s)':>11}{'test WER %':>12}{'test CER %':>12}")
    for minutes in args.minutes:
        wers = []
        for seed in seeds:
            overrides = args.overrides + ([f"seed={seed}"] if seed is not None else [])
            with tempfile.TemporaryDirectory() as tmp:
                r = run_budget(args.data_dir.resolve(), minutes, Path(tmp), overrides)
            test = r["scores"]["test"]["greedy"]
            wers.append(test["wer"])
            epoch = _epochs(r["checkpoints"])
            print(
                f"{minutes:>10g}{'-' if seed is None else seed:>6}{r['train_wall_seconds']:>9.0f}"
                f"{epoch:>11}{test['wer']:>12.2f}{test['cer']:>12.2f}",
                flush=True,
            )
            print(f"  dev WER % by epoch: {r['dev_wer_by_epoch']}", flush=True)
        if len(wers) > 1:
            print(f"{minutes:>10g}: median test WER {statistics.median(wers):.2f}% over {len(wers)} seeds")


if __name__ == "__main__":
    main()
