"""The one driver every recipe runs: train on prepared manifests, export, score the evaluation sets, report.

Recipes differ by their data preparation and config, not by their training or scoring code. After training,
the exported model runs once over each evaluation set (:meth:`asr.inference.Transcriber.emit`); those
log-probabilities are scored greedily and, with an LM, by beam search whose LM weight and word score are
tuned on the validation manifest (:mod:`asr.tuning`). ``EXP_DIR`` then holds:

- ``model.pt``: the exported best checkpoint, or the mean of the last K epochs (``trainer.average_last``);
- ``reports/<decoder>/<set>.jsonl``: one line per utterance (reference, hypothesis, errors);
- ``results.json``: one format for every recipe (see :func:`run_recipe`);
- ``RESULTS.md``: the same as a table, with the model, the training time and the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_only

from asr import store
from asr.checkpoint import export_model
from asr.config import Config, load_config
from asr.decoding import DecodePool, DecoderConfig
from asr.errors import ConfigError, DataError, UsageError
from asr.inference import Emitted, Transcriber
from asr.lm import build_arpa
from asr.manifest import Utterance, read_manifest
from asr.metrics import ErrorCounts
from asr.outputs import check_output_dir, write_text_atomic
from asr.plot import plot_curves
from asr.train import resolve_precision, train
from asr.tuning import Tuned, tune_lm

log = logging.getLogger(__name__)

GREEDY, BEAM_LM = "greedy", "beam_lm"  # the decoders' names in results.json and reports/
TUNE_UTTS = 500  # the LM weights are tuned on at most this many validation utterances (the first ones)


@dataclass(frozen=True)
class LMSource:
    """The word LM a recipe scores beam search with: none (the default); an n-gram of ``order`` built from
    the training transcripts (written to ``EXP_DIR/lm.arpa``); or a given ``arpa`` file (ARPA or KenLM
    binary) with an optional ``lexicon`` (default: the LM's unigrams, spelled by the model's tokenizer).
    ``note`` says why this LM was chosen (e.g. a fallback), for results.json."""

    order: int = 0
    arpa: str | None = None
    lexicon: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.order == 1 or self.order < 0:
            raise ConfigError(f"LM order must be 0 (no LM) or at least 2, got {self.order}")
        if self.order and self.arpa:
            raise UsageError("give an LM order to build from the training text or an LM file, not both")
        if self.lexicon and not self.arpa:
            raise UsageError("a lexicon needs an LM file")

    @property
    def enabled(self) -> bool:
        return bool(self.order or self.arpa)

    def decoder(self, exp_dir: Path, train_manifest: str | Path) -> DecoderConfig:
        """The beam-search decoder with this LM (weights not yet tuned); builds the n-gram LM if asked."""
        arpa = self.arpa
        if self.order:
            arpa = str(exp_dir / "lm.arpa")
            write_text_atomic(arpa, build_arpa((u.text for u in read_manifest(train_manifest)), self.order))
        return DecoderConfig(kind="beam", lm=arpa, lexicon=self.lexicon)

    def describe(self) -> dict[str, Any]:
        """Where the LM came from, for results.json."""
        if self.order:
            source = {
                "source": "training transcripts",
                "order": self.order,
                "arpa": "lm.arpa",
                "lexicon": None,
            }
        else:
            source = {"source": "file", "order": None, "arpa": self.arpa, "lexicon": self.lexicon}
        return {**source, "note": self.note} if self.note else source


def add_recipe_arguments(p: argparse.ArgumentParser, exp_dir: str | None, config: Path | None = None) -> None:
    """The options every recipe's train.py shares: ``--exp-dir`` (``exp_dir`` its default; None: the recipe
    chooses), ``--config`` (when the recipe has one config, ``config``) and the ``key=value`` overrides."""
    default = f" (default {exp_dir})" if exp_dir else ""
    p.add_argument("--exp-dir", type=Path, default=exp_dir, help=f"checkpoints, logs and results{default}")
    if config is not None:
        p.add_argument("--config", type=Path, default=config, help=f"YAML config (default {config})")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. trainer.max_epochs=5"
    )


def add_lm_arguments(p: argparse.ArgumentParser, order: int = 3) -> None:
    """``--lm-order`` (an n-gram built from the training text, ``order`` by default), or ``--lm`` and
    ``--lexicon``."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--lm-order",
        type=int,
        default=order,
        help="also score with beam search and an n-gram LM of this order built from the training text "
        f"(default {order}; 0: greedy only)",
    )
    group.add_argument("--lm", help="score with beam search and this LM instead (ARPA, or KenLM binary)")
    p.add_argument("--lexicon", help="with --lm: its character lexicon (default: the LM's unigrams)")


def lm_source(args: argparse.Namespace) -> LMSource:
    """The :class:`LMSource` that the options of :func:`add_lm_arguments` ask for."""
    if args.lm:
        return LMSource(arpa=args.lm, lexicon=args.lexicon)
    if args.lexicon:
        raise UsageError("--lexicon needs --lm")
    return LMSource(order=args.lm_order)


def recipe_config(
    config: str | Path | None,
    train_manifest: str | Path,
    val_manifest: str | Path,
    exp_dir: str | Path,
    overrides: Sequence[str] = (),
    settings: Sequence[str] = (),
) -> Config:
    """The recipe's YAML, its manifests, exp dir and other ``settings``, then the user's overrides (which
    win)."""
    base = [
        f"data.train_manifest={train_manifest}",
        f"data.val_manifest={val_manifest}",
        f"exp_dir={exp_dir}",
    ]
    return load_config(config, [*base, *settings, *overrides])


def command_line(script: str | Path, argv: Sequence[str] | None) -> str:
    """The command that ran a recipe, for its results: this process's, or ``script`` with ``argv``."""
    return shlex.join(["python", *(sys.argv if argv is None else [str(script), *argv])])


def eval_device(cfg: Config) -> str:
    """Where the exported model is scored: a GPU when training may use one and there is one, else the CPU."""
    gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "cuda" if gpu else "cpu"


def decode_processes() -> int:
    """Beam-search worker processes: the CPU's cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _row(counts: ErrorCounts, skipped: int) -> dict[str, Any]:
    return {
        "wer": round(100 * counts.wer, 2),
        "cer": round(100 * counts.cer, 2),
        "words": counts.words,
        "skipped": skipped,
    }


def _same_file(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


@dataclass
class Scored:
    """The evaluation sets scored by :func:`score_sets`."""

    scores: dict[str, dict[str, dict[str, Any]]]  # set -> decoder -> wer, cer, words, skipped
    firsts: dict[str, Utterance]  # each set's first readable utterance
    tuned: Tuned | None  # the LM weights' grid search, with an LM
    tuning_utts: int  # the validation utterances it ran on


def _score(
    transcriber: Transcriber,
    emitted: Emitted,
    report_dir: Path,
    name: str,
    decoder_name: str,
    decoder: DecoderConfig | None,
    processes: int,
) -> dict[str, Any]:
    """One set's scores with one decoder, its report written to ``report_dir/<decoder>/<name>.jsonl``."""
    counts = transcriber.score(emitted, decoder, report_dir / decoder_name / f"{name}.jsonl", processes)
    row = _row(counts, len(emitted.skipped))
    print(
        f"{name} {decoder_name}: WER {row['wer']:.2f}%  CER {row['cer']:.2f}%  "
        f"({row['words']} words, {row['skipped']} skipped)",
        flush=True,
    )
    return row


def score_sets(
    transcriber: Transcriber,
    eval_sets: Mapping[str, str | Path],
    report_dir: Path,
    lm_decoder: DecoderConfig | None,
    val_manifest: str | Path,
    processes: int = 1,
    tune_utts: int = TUNE_UTTS,
) -> Scored:
    """Score each set greedily and, with ``lm_decoder``, by beam search with its weights tuned on the first
    ``tune_utts`` utterances of ``val_manifest``; per-utterance reports go to ``report_dir/<decoder>/``.

    Each set runs through the model once, one set at a time; when ``val_manifest`` is one of the sets, it
    goes first and its log-probabilities tune the LM too, after its greedy score is printed.
    """
    order = sorted(eval_sets, key=lambda name: not _same_file(eval_sets[name], val_manifest))
    scored = Scored({}, {}, None, 0)

    def tune(dev: Emitted) -> None:
        with DecodePool(transcriber.tokenizer, processes) as pool:
            scored.tuned, scored.tuning_utts = tune_lm(dev, lm_decoder, pool), len(dev.utterances)

    if lm_decoder is not None and not _same_file(eval_sets[order[0]], val_manifest):
        tune(transcriber.emit(read_manifest(val_manifest)[:tune_utts]))
    for name in order:
        emitted = transcriber.emit(eval_sets[name])
        for error in emitted.skipped:
            print(f"{name}: skipped: {error}", file=sys.stderr)
        args = transcriber, emitted, report_dir, name
        scored.scores[name] = {GREEDY: _score(*args, GREEDY, None, 1)}  # before the LM's tuning (minutes)
        if lm_decoder is not None and scored.tuned is None:
            tune(Emitted(emitted.utterances[:tune_utts], emitted.emissions[:tune_utts], []))
        if scored.tuned is not None:
            scored.scores[name][BEAM_LM] = _score(*args, BEAM_LM, scored.tuned.decoder, processes)
        if emitted.utterances:
            scored.firsts[name] = emitted.utterances[0]
    scored.scores = {name: scored.scores[name] for name in eval_sets}  # the caller's order
    scored.firsts = {name: scored.firsts[name] for name in eval_sets if name in scored.firsts}
    return scored


def _example(transcriber: Transcriber, scored: Scored) -> dict[str, Any] | None:
    """The first readable utterance of the first set (in the caller's order), transcribed from its file."""
    name = next(iter(scored.firsts), None)
    if name is None:
        return None
    sample = scored.firsts[name]
    (transcript,) = transcriber.transcribe([sample.audio_filepath])
    return {
        "set": name,
        "audio": sample.audio_filepath,
        "reference": sample.text,
        "hypothesis": transcript.text,
    }


def run_recipe(
    cfg: Config,
    eval_sets: Mapping[str, str | Path],
    lm: LMSource = LMSource(),
    *,
    command: str = "",
    details: Mapping[str, Any] | None = None,
    tune_utts: int = TUNE_UTTS,
) -> dict[str, Any]:
    """Train (resuming if interrupted), export the model (:func:`asr.train.train`), score every evaluation
    set, report.

    ``eval_sets`` maps a name to a manifest. Each set's log-probabilities are computed once and scored
    greedily and, when ``lm`` is enabled, with beam search and the LM, its weights tuned on the first
    ``tune_utts`` utterances of ``cfg.data.val_manifest`` (:func:`score_sets`). ``details`` (facts about the
    data, e.g. which speakers are held out) are kept in the results. Returns what ``EXP_DIR/results.json``
    holds::

        {"scores": {SET: {"greedy": {"wer", "cer", "words", "skipped"}, "beam_lm": {...}}},
         "lm": null | {"source", "order", "arpa", "lexicon", ["note",] "lm_weight", "word_score",
                       "tuned_on", "tuning_utterances", "tuning_wer"},
         "train_wall_seconds", "devices", "device_hours", "parameters", "precision",
         "checkpoints" (the model's, relative to EXP_DIR), "selected_by" (the dev metric that chose the
         checkpoint, or "mean of the last K epochs": ``trainer.average_last``), "command",
         "details",
         "example": {"set", "audio", "reference", "hypothesis"}}

    WER and CER are percentages. Under DDP only rank 0 scores; the other ranks return {}.
    """
    exp = Path(cfg.exp_dir)
    start = time.perf_counter()
    sources = train(cfg)
    train_seconds = time.perf_counter() - start
    world = _world_size()
    if rank_zero_only.rank != 0:
        return {}
    export_model(sources, exp / "model.pt")
    transcriber = Transcriber.load(exp / "model.pt", eval_device(cfg))
    for decoder_name in (GREEDY, BEAM_LM) if lm.enabled else (GREEDY,):
        check_output_dir(exp / "reports" / decoder_name)
    lm_decoder = lm.decoder(exp, cfg.data.train_manifest) if lm.enabled else None
    scored = score_sets(
        transcriber,
        eval_sets,
        exp / "reports",
        lm_decoder,
        cfg.data.val_manifest,
        decode_processes(),
        tune_utts,
    )
    results: dict[str, Any] = {
        "scores": scored.scores,
        "lm": None,
        "train_wall_seconds": round(train_seconds, 1),
        "devices": world,
        "device_hours": round(train_seconds * world / 3600, 3),
        "parameters": sum(p.numel() for p in transcriber.recognizer.parameters()),
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),  # what ran
        "checkpoints": [os.path.relpath(p, exp) for p in sources],
        "selected_by": (
            f"mean of the last {cfg.trainer.average_last} epochs"
            if cfg.trainer.average_last
            else f"val/{cfg.trainer.select_by}"
        ),
        "command": command,
        "details": dict(details or {}),
        "example": _example(transcriber, scored),
    }
    if scored.tuned is not None:
        results["lm"] = {
            **lm.describe(),
            "lm_weight": scored.tuned.decoder.lm_weight,
            "word_score": scored.tuned.decoder.word_score,
            "tuned_on": str(cfg.data.val_manifest),
            "tuning_utterances": scored.tuning_utts,
            "tuning_wer": round(100 * scored.tuned.best.counts.wer, 2),
        }
    write_text_atomic(exp / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(exp / "RESULTS.md", results_markdown(cfg, results))
    _register(exp, cfg, results)
    _plot_curves(exp)
    example = results["example"]
    if example is not None:
        print(f"example {example['audio']}\n  reference:  {example['reference']}")
        print(f"  hypothesis: {example['hypothesis']}")
    print(f"model: {exp / 'model.pt'}  results: {exp / 'results.json'}, {exp / 'RESULTS.md'}")
    return results


def _register(exp: Path, cfg: Config, results: Mapping[str, Any]) -> None:
    """Add the exported model to the model store under the experiment folder's name, with its first
    evaluation set's greedy WER (the test set's when there is one)."""
    scores = results["scores"]
    name = "test" if "test" in scores else next(iter(scores), None)
    greedy = scores[name][GREEDY] if name is not None else {}
    entry = store.register(
        exp / "model.pt",
        exp.resolve().name,
        test_wer=greedy.get("wer"),
        test_cer=greedy.get("cer"),
        data=str(cfg.data.train_manifest),
    )
    print(f"registered as {entry.name!r} in {store.home()} (asr transcribe --model {entry.name} ...)")


def _plot_curves(exp: Path) -> None:
    """``EXP_DIR/curves.png``: loss and dev WER/CER against step and time, when matplotlib is installed."""
    try:
        plot_curves([exp], exp / "curves.png")
    except (UsageError, DataError) as e:  # matplotlib missing, or no curves logged
        log.warning("no curves.png: %s", e)


def results_markdown(cfg: Config, results: Mapping[str, Any]) -> str:
    """The run's RESULTS.md: WER/CER per set and decoder, model size, device-hours, the LM and the command."""
    m = cfg.model
    lines = [
        f"# Results: {Path(cfg.exp_dir).name}",
        "",
        "| set | greedy WER | greedy CER | beam + LM WER | beam + LM CER | words | skipped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, by_decoder in results["scores"].items():
        g, b = by_decoder[GREEDY], by_decoder.get(BEAM_LM)
        lm_cells = f"{b['wer']:.2f}% | {b['cer']:.2f}%" if b else "- | -"
        lines.append(
            f"| {name} | {g['wer']:.2f}% | {g['cer']:.2f}% | {lm_cells} | {g['words']} | {g['skipped']} |"
        )
    lines += [
        "",
        f"- model: {m.num_layers}x {'Bi' if m.bidirectional else ''}{m.rnn_type.upper()}-{m.hidden_size}, "
        f"{m.subsampling}x conv subsampling"
        + (f", layers above {m.reduce_after} at {m.frame_factor}x" if m.reduce_after else "")
        + f", {results['parameters'] / 1e6:.2f} M parameters",
        f"- training: {results['train_wall_seconds'] / 3600:.2f} h wall-clock on {results['devices']} "
        f"device(s) = {results['device_hours']:.2f} device-hours (this invocation: a resumed run counts from "
        f"its restart), precision {results['precision']}; model "
        f"{', '.join(results['checkpoints'])} (by {results['selected_by']})",
    ]
    lm = results["lm"]
    if lm is not None:
        source = f"a {lm['order']}-gram of the training transcripts" if lm["order"] else Path(lm["arpa"]).name
        lines.append(
            f"- beam search with {source}, lm_weight {lm['lm_weight']:g} and word_score {lm['word_score']:g} "
            f"tuned on {lm['tuning_utterances']} utterances of {Path(lm['tuned_on']).name}"
            + (f" ({lm['note']})" if lm.get("note") else "")
        )
    lines += [f"- {key}: {value}" for key, value in results["details"].items()]
    lines += ["", "Command:", "", "```bash", results["command"], "```", ""]
    return "\n".join(lines)
