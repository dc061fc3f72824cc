"""The ``asr`` command: parses arguments and calls the library, nothing else.

Exit codes: 0 success, 1 some input files could not be read, 2 usage error, 3 bad config, 4 bad
checkpoint, 5 bad manifest, 6 an output could not be written (full disk, no permission, not a folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

    from asr.decode import DecoderConfig

EXIT_BAD_AUDIO, EXIT_USAGE, EXIT_CONFIG, EXIT_CHECKPOINT, EXIT_MANIFEST, EXIT_OUTPUT = 1, 2, 3, 4, 5, 6
WINDOW_S, OVERLAP_S = 30.0, 4.0  # asr.longform's defaults, repeated so that --help imports no torch
HOTWORD_BONUS = 3.0  # default --hotword bonus: the word's probability times e^3, about 20

DESCRIPTION = """\
Train, evaluate and run CTC bidirectional-RNN speech recognisers.

  asr train --config conf/small.yaml data.train_manifest=train.jsonl data.val_manifest=dev.jsonl
  asr transcribe audio.wav --model exp/run/checkpoints/last.ckpt [--format srt]
  asr transcribe --manifest files.jsonl --model model.pt --json [--decoder beam --lm lm.arpa]
  asr evaluate test.jsonl --model model.ckpt --report report.jsonl [--decoder beam --lm lm.arpa]
  asr export exp/run/checkpoints/best.ckpt model.pt
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asr", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model (resumes automatically from EXP_DIR/checkpoints/last.ckpt)",
        description="Train a model from a YAML config plus key=value overrides of any config field "
        "(see asr/config.py). The resolved config is written to EXP_DIR/config.yaml; checkpoints go to "
        "EXP_DIR/checkpoints (best by validation WER, and last.ckpt), logs to EXP_DIR/logs (CSV) and "
        "EXP_DIR/tensorboard. Rerunning the same command resumes an interrupted run.",
    )
    t.add_argument("--config", help="YAML file setting config values (e.g. conf/small.yaml)")
    t.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.max_epochs=10 model.rnn_type=gru"
    )

    r = sub.add_parser(
        "transcribe",
        help="transcribe audio files, or the files of a manifest",
        description="Transcribe audio files (wav, flac, ogg, mp3, sph; any rate and channel count). "
        "Prints the transcript of a single file, or 'PATH<TAB>TRANSCRIPT' lines for several. Files up to "
        "--window seconds are sorted by length and batched; longer ones are read and decoded in overlapping "
        "windows, with bounded memory. Unreadable files are reported on stderr and the exit code is 1.",
    )
    r.add_argument("audio", nargs="*", help="audio files")
    r.add_argument("--manifest", help="also transcribe the audio_filepath of each line of this JSONL file")
    r.add_argument("--model", required=True, help="checkpoint (training or exported)")
    r.add_argument(
        "--json", action="store_true", help="print one JSON object per file (same as --format json)"
    )
    r.add_argument("--timestamps", action="store_true", help="time each word (CTC forced alignment)")
    r.add_argument(
        "--format",
        choices=("txt", "json", "srt", "vtt"),
        default="txt",
        help="output format (default txt); srt and vtt imply --timestamps",
    )
    r.add_argument(
        "--output-dir",
        help="write AUDIO_STEM.<format> files here instead of printing, in the inputs' folders relative to "
        "the folder they share",
    )
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    r.add_argument(
        "--window",
        type=float,
        default=WINDOW_S,
        help=f"files over this many seconds go in overlapping windows this long (default {WINDOW_S:g})",
    )
    r.add_argument(
        "--overlap", type=float, default=OVERLAP_S, help=f"seconds shared by windows (default {OVERLAP_S:g})"
    )
    _decoder_arguments(r)

    e = sub.add_parser(
        "evaluate",
        help="WER/CER of a model on a manifest",
        description="Transcribe every utterance of a JSONL manifest and print corpus-level WER and CER.",
    )
    e.add_argument("manifest", help="JSONL manifest (audio_filepath, duration, text)")
    e.add_argument("--model", required=True, help="checkpoint (training or exported)")
    e.add_argument("--report", help="write one JSON line per utterance (reference, hypothesis, errors) here")
    e.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _decoder_arguments(e)

    x = sub.add_parser(
        "export",
        help="write a small inference-only checkpoint",
        description="Strip optimiser and loop state from a training checkpoint.",
    )
    x.add_argument("checkpoint", help="training checkpoint")
    x.add_argument("output", help="where to write the exported model")
    return p


def _hotword(value: str) -> tuple[str, float]:
    from asr.text import normalize_text

    word, _, bonus = value.rpartition(":") if ":" in value else (value, "", str(HOTWORD_BONUS))
    try:
        return normalize_text(word), float(bonus)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WORD or WORD:BONUS, got {value!r}") from None


def _decoder_arguments(p: argparse.ArgumentParser) -> None:
    """The decoding options shared by transcribe and evaluate."""
    p.add_argument(
        "--decoder", choices=("greedy", "beam"), default="greedy", help="greedy (default) or beam search"
    )
    p.add_argument("--lm", help="word n-gram LM for beam search: ARPA (tools/build_lm.py) or KenLM binary")
    p.add_argument("--lexicon", help="'word c h a r s |' lines (default with --lm: the LM's words)")
    p.add_argument("--lexicon-free", action="store_true", help="beam search: any character string is a word")
    p.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame (default 50)")
    p.add_argument(
        "--lm-weight", type=float, default=2.0, help="times the LM's log10 probability (default 2)"
    )
    p.add_argument("--word-score", type=float, default=0.0, help="added per word (default 0)")
    p.add_argument(
        "--hotword",
        type=_hotword,
        action="append",
        default=[],
        metavar="WORD[:BONUS]",
        help=f"beam search: favour WORD, adding BONUS (natural log, default {HOTWORD_BONUS:g}) each time a "
        "hypothesis has it; repeat for more words",
    )
    p.add_argument("--processes", type=int, default=1, help="beam search worker processes (default 1)")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar (there is none unless stderr is a tty)"
    )


def _decoder_config(args: argparse.Namespace) -> DecoderConfig:
    from asr.decode import DecoderConfig

    return DecoderConfig(
        kind=args.decoder,
        beam_size=args.beam_size,
        lm=args.lm,
        lexicon=args.lexicon,
        lexicon_free=args.lexicon_free,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
        hotwords=tuple(args.hotword),
    )


def _progress_bar(args: argparse.Namespace, total: int) -> tqdm:
    """A files progress bar on stderr, off with --quiet or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, disable=True if args.quiet else None)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _os_error(e: OSError) -> str:
    """One line naming the file: "PATH: reason" (save_atomic's messages already name it)."""
    from asr.errors import first_line

    reason = e.strerror or first_line(e)
    return f"{e.filename}: {reason}" if e.filename is not None else reason


def _train(args: argparse.Namespace) -> int:
    from asr.config import ConfigError, load_config
    from asr.manifest import ManifestError
    from asr.train import train

    try:
        cfg = load_config(args.config, args.overrides)
        print(f"best checkpoint: {train(cfg)}")
    except ConfigError as e:
        return _fail(str(e), EXIT_CONFIG)
    except ManifestError as e:
        return _fail(str(e), EXIT_MANIFEST)
    except OSError as e:
        return _fail(_os_error(e), EXIT_OUTPUT)
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from asr.checkpoint import CheckpointError, load_model
    from asr.decode import DecoderError
    from asr.inference import output_paths, transcribe_files
    from asr.manifest import ManifestError, read_audio_paths
    from asr.timing import format_transcript, transcript_dict

    fmt = "json" if args.json else args.format
    if args.timestamps and fmt == "txt":
        return _fail("--timestamps needs --format json, srt or vtt", EXIT_USAGE)
    if not 0 <= args.overlap < args.window:
        return _fail(f"need 0 <= --overlap < --window, got {args.overlap} and {args.window}", EXIT_USAGE)
    timed = args.timestamps or fmt in ("srt", "vtt")
    try:
        paths = [*args.audio, *(read_audio_paths(args.manifest) if args.manifest else [])]
        if not paths:
            return _fail("give audio files or --manifest", EXIT_USAGE)
        if fmt in ("srt", "vtt") and len(paths) > 1 and not args.output_dir:
            return _fail(f"several files as {fmt} need --output-dir", EXIT_USAGE)
        try:
            outputs = output_paths(paths, args.output_dir, f".{fmt}") if args.output_dir else []
        except ValueError as e:
            return _fail(f"--output-dir: {e}", EXIT_USAGE)
        decoder = _decoder_config(args)
        model = load_model(args.model, args.device)
        with _progress_bar(args, len(paths)) as bar:
            results = transcribe_files(
                model, paths, decoder, timed, args.window, args.overlap, args.processes, progress=bar.update
            )
    except DecoderError as e:
        return _fail(str(e), EXIT_USAGE)
    except CheckpointError as e:
        return _fail(str(e), EXIT_CHECKPOINT)
    except ManifestError as e:
        return _fail(str(e), EXIT_MANIFEST)
    code = 0
    for i, r in enumerate(results):
        if r.text is None:
            code = _fail(r.error, EXIT_BAD_AUDIO)
            continue
        if fmt in ("srt", "vtt"):
            out = format_transcript(r.words, fmt)
        elif fmt == "json":
            body = transcript_dict(r.words) if timed else {"text": r.text}
            out = json.dumps({"audio_filepath": r.path, **body}, ensure_ascii=False) + "\n"
        elif len(paths) == 1 or args.output_dir:
            out = r.text + "\n"
        else:
            out = f"{r.path}\t{r.text}\n"
        if outputs:
            try:
                outputs[i].parent.mkdir(parents=True, exist_ok=True)
                outputs[i].write_text(out, encoding="utf-8")
            except OSError as e:
                return _fail(_os_error(e), EXIT_OUTPUT)
        else:
            print(out, end="", flush=True)
    return code


def _evaluate(args: argparse.Namespace) -> int:
    from asr.checkpoint import CheckpointError, load_model
    from asr.decode import DecoderError
    from asr.inference import evaluate_manifest
    from asr.manifest import ManifestError, read_manifest

    try:
        decoder = _decoder_config(args)
        model = load_model(args.model, args.device)
        utts = read_manifest(args.manifest)
        with _progress_bar(args, len(utts)) as bar:
            counts, skipped = evaluate_manifest(
                model, utts, args.report, decoder, args.processes, progress=bar.update
            )
    except DecoderError as e:
        return _fail(str(e), EXIT_USAGE)
    except CheckpointError as e:
        return _fail(str(e), EXIT_CHECKPOINT)
    except ManifestError as e:
        return _fail(str(e), EXIT_MANIFEST)
    except OSError as e:
        return _fail(_os_error(e), EXIT_OUTPUT)
    print(
        f"WER {100 * counts.wer:.2f}% ({counts.word_errors}/{counts.words})  "
        f"CER {100 * counts.cer:.2f}% ({counts.char_errors}/{counts.chars})"
    )
    if skipped:
        return _fail(f"{skipped} unreadable file(s) skipped", EXIT_BAD_AUDIO)
    return 0


def _export(args: argparse.Namespace) -> int:
    from asr.checkpoint import CheckpointError, export_model

    try:
        export_model(args.checkpoint, args.output)
    except CheckpointError as e:
        return _fail(str(e), EXIT_CHECKPOINT)
    except OSError as e:
        return _fail(_os_error(e), EXIT_OUTPUT)
    print(f"exported {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"train": _train, "transcribe": _transcribe, "evaluate": _evaluate, "export": _export}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
