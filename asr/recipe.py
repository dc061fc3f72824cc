"""The end-to-end driver every recipe shares: train on prepared manifests, score the test set, report.

Recipes differ by their data preparation and config, not by their training code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only

from asr.audio import AudioError, load_audio
from asr.checkpoint import export_model, load_model
from asr.config import Config, load_config
from asr.decode import DecoderConfig
from asr.inference import evaluate_manifest, transcribe_files
from asr.lm import best_weights, build_arpa, tune_weights
from asr.manifest import read_manifest
from asr.recognizer import Recognizer
from asr.train import train

log = logging.getLogger(__name__)
LM_WEIGHTS = (0.5, 1.0, 2.0)  # the grid tuned on dev when a recipe scores with an LM
WORD_SCORES = (0.0, 1.0)


def add_recipe_arguments(p: argparse.ArgumentParser, exp_dir: str, config: Path) -> None:
    """The options every recipe's train.py shares; the recipe adds its data options itself."""
    p.add_argument("--exp-dir", type=Path, default=Path(exp_dir), help="checkpoints, logs and results")
    p.add_argument("--config", type=Path, default=config)
    p.add_argument(
        "--lm-order",
        type=int,
        default=3,
        help="also score with beam search and an n-gram LM of this order built from the training text "
        "(0: greedy only)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. trainer.max_epochs=5"
    )


def recipe_config(
    config: str | Path, manifests: dict[str, Path], exp_dir: str | Path, overrides: list[str]
) -> Config:
    """The recipe's YAML, its manifests and exp dir, then the user's overrides (which win)."""
    base = [
        f"data.train_manifest={manifests['train']}",
        f"data.val_manifest={manifests['dev']}",
        f"data.test_manifest={manifests['test']}",
        f"exp_dir={exp_dir}",
    ]
    return load_config(config, base + list(overrides))


def lm_decoding(model: Recognizer, cfg: Config, order: int) -> tuple[DecoderConfig, dict]:
    """Build an n-gram LM from the training text, tune its weights on dev, score the test set with it.

    Returns the tuned beam-search decoder and its test results; the LM is written to ``EXP_DIR/lm.arpa``.
    """
    exp = Path(cfg.exp_dir)
    (exp / "lm.arpa").write_text(build_arpa((u.text for u in read_manifest(cfg.data.train_manifest)), order))
    base = DecoderConfig(kind="beam", lm=str(exp / "lm.arpa"))
    dev = []
    for u in read_manifest(cfg.data.val_manifest):
        try:
            dev.append((u.text, load_audio(u.audio_filepath)))
        except AudioError as e:
            log.warning("skipped: %s", e)
    emissions = model.emissions([wave for _, wave in dev])
    grid = tune_weights(model.tokenizer, emissions, [text for text, _ in dev], base, LM_WEIGHTS, WORD_SCORES)
    weight, word_score, _ = best_weights(grid)
    decoder = dataclasses.replace(base, lm_weight=weight, word_score=word_score)
    counts, _ = evaluate_manifest(model, cfg.data.test_manifest, exp / "test_report_lm.jsonl", decoder)
    return decoder, {
        "lm_order": order,
        "lm_weight": weight,
        "word_score": word_score,
        "test_wer": round(100 * counts.wer, 2),
        "test_cer": round(100 * counts.cer, 2),
    }


def run_recipe(cfg: Config, lm_order: int = 0) -> dict:
    """Train (resuming if interrupted), export the best model, score the test set, transcribe one file.

    With ``lm_order`` > 0 the test set is also scored with beam search and an n-gram LM of that order built
    from the training text (weights tuned on dev). Writes ``model.pt``, ``test_report.jsonl`` and
    ``results.json`` into ``cfg.exp_dir`` and returns the results.
    """
    exp = Path(cfg.exp_dir)
    start = time.perf_counter()
    best = train(cfg)
    train_seconds = time.perf_counter() - start
    if rank_zero_only.rank != 0:  # under DDP the other ranks stop after training
        return {}
    export_model(best, exp / "model.pt")
    model = load_model(exp / "model.pt")
    counts, skipped = evaluate_manifest(model, cfg.data.test_manifest, exp / "test_report.jsonl")
    sample = read_manifest(cfg.data.test_manifest)[0]
    (example,) = transcribe_files(model, [sample.audio_filepath])
    results = {
        "test_wer": round(100 * counts.wer, 2),
        "test_cer": round(100 * counts.cer, 2),
        "test_words": counts.words,
        "test_skipped": skipped,
        "train_wall_seconds": round(train_seconds, 1),
        "best_checkpoint": str(best),
        "example": {"audio": sample.audio_filepath, "reference": sample.text, "hypothesis": example.text},
    }
    print(f"test WER {results['test_wer']:.2f}%  CER {results['test_cer']:.2f}%  ({counts.words} words)")
    if lm_order > 0:
        decoder, results["beam_lm"] = lm_decoding(model, cfg, lm_order)
        lm = results["beam_lm"]
        print(
            f"test WER {lm['test_wer']:.2f}%  CER {lm['test_cer']:.2f}%  with beam search and a "
            f"{lm_order}-gram LM from the training text "
            f"(lm_weight {decoder.lm_weight:g}, word_score {decoder.word_score:g})"
        )
    (exp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"example {sample.audio_filepath}\n  reference:  {sample.text}\n  hypothesis: {example.text}")
    print(f"model: {exp / 'model.pt'}  results: {exp / 'results.json'}")
    return results
