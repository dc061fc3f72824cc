"""The end-to-end driver every recipe shares: train on prepared manifests, score the test set, report.

Recipes differ by their data preparation and config, not by their training code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
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


def tune_decoder(
    model: Recognizer, dev_manifest: str | Path, base: DecoderConfig, max_utts: int = 0, processes: int = 1
) -> DecoderConfig:
    """``base`` with the LM weight and word score (grid LM_WEIGHTS x WORD_SCORES) best on the dev set.

    ``max_utts`` > 0 tunes on the first that many dev utterances only.
    """
    utts = read_manifest(dev_manifest)
    dev = []
    for u in utts[:max_utts] if max_utts > 0 else utts:
        try:
            dev.append((u.text, load_audio(u.audio_filepath)))
        except AudioError as e:
            log.warning("skipped: %s", e)
    emissions = model.emissions([wave for _, wave in dev])
    refs = [text for text, _ in dev]
    grid = tune_weights(model.tokenizer, emissions, refs, base, LM_WEIGHTS, WORD_SCORES, processes)
    weight, word_score, _ = best_weights(grid)
    return dataclasses.replace(base, lm_weight=weight, word_score=word_score)


def lm_decoding(model: Recognizer, cfg: Config, order: int) -> tuple[DecoderConfig, dict]:
    """Build an n-gram LM from the training text, tune its weights on dev, score the test set with it.

    Returns the tuned beam-search decoder and its test results; the LM is written to ``EXP_DIR/lm.arpa``.
    """
    exp = Path(cfg.exp_dir)
    (exp / "lm.arpa").write_text(build_arpa((u.text for u in read_manifest(cfg.data.train_manifest)), order))
    decoder = tune_decoder(model, cfg.data.val_manifest, DecoderConfig(kind="beam", lm=str(exp / "lm.arpa")))
    counts, _ = evaluate_manifest(model, cfg.data.test_manifest, exp / "test_report_lm.jsonl", decoder)
    return decoder, {
        "lm_order": order,
        "lm_weight": decoder.lm_weight,
        "word_score": decoder.word_score,
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


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def score_sets(
    model: Recognizer, sets: Mapping[str, Path], report_dir: Path, decoder: DecoderConfig, processes: int = 1
) -> dict[str, dict]:
    """WER/CER (in %) of each named manifest; per-utterance reports go to ``report_dir/<name>.jsonl``."""
    results = {}
    for name, manifest in sets.items():
        counts, skipped = evaluate_manifest(model, manifest, report_dir / f"{name}.jsonl", decoder, processes)
        results[name] = {
            "wer": round(100 * counts.wer, 2),
            "cer": round(100 * counts.cer, 2),
            "words": counts.words,
            "skipped": skipped,
        }
        print(f"{name} ({decoder.kind}): WER {results[name]['wer']:.2f}%  CER {results[name]['cer']:.2f}%")
    return results


def run_multiset_recipe(
    cfg: Config,
    eval_sets: Mapping[str, Path],
    lm: tuple[Path, Path] | None = None,
    command: str = "",
    tune_utts: int = 500,
) -> dict:
    """Train (resuming if interrupted), export, score every evaluation set greedily and, with ``lm`` (an ARPA
    or KenLM file and a character lexicon), with beam search whose LM weights are tuned on the validation
    manifest. Writes ``model.pt``, ``reports/``, ``results.json`` and ``RESULTS.md`` into ``cfg.exp_dir``.
    """
    exp = Path(cfg.exp_dir)
    start = time.perf_counter()
    best = train(cfg)
    train_seconds = time.perf_counter() - start
    world = _world_size()
    if rank_zero_only.rank != 0:
        return {}
    export_model(best, exp / "model.pt")
    model = load_model(exp / "model.pt", "cuda" if torch.cuda.is_available() else "cpu")
    processes = max(1, min(8, os.cpu_count() or 1))
    results: dict = {
        "greedy": score_sets(model, eval_sets, exp / "reports" / "greedy", DecoderConfig()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_wall_seconds": round(train_seconds, 1),
        "device_hours": round(train_seconds * world / 3600, 3),
        "devices": world,
        "best_checkpoint": str(best),
        "command": command,
    }
    if lm is not None:
        base = DecoderConfig(kind="beam", lm=str(lm[0]), lexicon=str(lm[1]))
        decoder = tune_decoder(model, cfg.data.val_manifest, base, tune_utts, processes)
        results["beam_lm"] = score_sets(model, eval_sets, exp / "reports" / "beam_lm", decoder, processes)
        results["lm"] = {"arpa": str(lm[0]), "lm_weight": decoder.lm_weight, "word_score": decoder.word_score}
    (exp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (exp / "RESULTS.md").write_text(results_markdown(cfg, results))
    print(f"model: {exp / 'model.pt'}  results: {exp / 'RESULTS.md'}")
    return results


def results_markdown(cfg: Config, results: Mapping) -> str:
    """The run's RESULTS.md: WER/CER per set and decoder, model size, device-hours and the command."""
    m = cfg.model
    lines = [
        f"# Results: {Path(cfg.exp_dir).name}",
        "",
        "| set | greedy WER | greedy CER | beam + LM WER | beam + LM CER | words |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    beam = results.get("beam_lm", {})
    for name, g in results["greedy"].items():
        b = beam.get(name)
        lm_cells = f"{b['wer']:.2f}% | {b['cer']:.2f}%" if b else "- | -"
        lines.append(f"| {name} | {g['wer']:.2f}% | {g['cer']:.2f}% | {lm_cells} | {g['words']} |")
    lines += [
        "",
        f"- model: {m.num_layers}x {'Bi' if m.bidirectional else ''}{m.rnn_type.upper()}-{m.hidden_size}, "
        f"{m.subsampling}x conv subsampling, {results['parameters'] / 1e6:.2f} M parameters",
        f"- training: {results['train_wall_seconds'] / 3600:.2f} h wall-clock on {results['devices']} "
        f"device(s) = {results['device_hours']:.2f} device-hours (this invocation: a resumed run counts from "
        f"its restart), precision {cfg.trainer.precision}",
    ]
    if "lm" in results:
        lm = results["lm"]
        lines.append(
            f"- beam search with {Path(lm['arpa']).name}, lm_weight {lm['lm_weight']:g} and word_score "
            f"{lm['word_score']:g} tuned on {Path(cfg.data.val_manifest).name}"
        )
    lines += ["", "Command:", "", "```bash", results["command"], "```", ""]
    return "\n".join(lines)
