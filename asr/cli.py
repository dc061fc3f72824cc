"""The ``asr`` command: parses arguments and calls the library, nothing else.

Exit codes: 0 success, 1 some input files could not be read, 2 usage error, 3 bad config, 4 bad
checkpoint, 5 bad manifest.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_BAD_AUDIO, EXIT_USAGE, EXIT_CONFIG, EXIT_CHECKPOINT, EXIT_MANIFEST = 1, 2, 3, 4, 5

DESCRIPTION = """\
Train, evaluate and run CTC bidirectional-RNN speech recognisers.

  asr train --config conf/small.yaml data.train_manifest=train.jsonl data.val_manifest=dev.jsonl
  asr transcribe audio.wav --model exp/run/checkpoints/last.ckpt [--format srt]
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
        help="transcribe audio files with greedy decoding",
        description="Transcribe audio files (wav, flac, ogg, mp3, sph; any rate and channel count). "
        "Prints the transcript of a single file, or 'PATH<TAB>TRANSCRIPT' lines for several. "
        "Unreadable files are reported on stderr and the exit code is 1.",
    )
    r.add_argument("audio", nargs="+", help="audio files")
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
    r.add_argument("--output-dir", help="write AUDIO_STEM.<format> files here instead of printing")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")

    e = sub.add_parser(
        "evaluate",
        help="WER/CER of a model on a manifest",
        description="Transcribe every utterance of a JSONL manifest and print corpus-level WER and CER.",
    )
    e.add_argument("manifest", help="JSONL manifest (audio_filepath, duration, text)")
    e.add_argument("--model", required=True, help="checkpoint (training or exported)")
    e.add_argument("--report", help="write one JSON line per utterance (reference, hypothesis, errors) here")
    e.add_argument("--device", default="cpu", help="torch device (default cpu)")
    e.add_argument(
        "--decoder", choices=("greedy", "beam"), default="greedy", help="greedy (default) or beam search"
    )
    e.add_argument("--lm", help="word n-gram LM for beam search: ARPA (tools/build_lm.py) or KenLM binary")
    e.add_argument("--lexicon", help="'word c h a r s |' lines (default with --lm: the LM's words)")
    e.add_argument("--lexicon-free", action="store_true", help="beam search: any character string is a word")
    e.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame (default 50)")
    e.add_argument(
        "--lm-weight", type=float, default=2.0, help="times the LM's log10 probability (default 2)"
    )
    e.add_argument("--word-score", type=float, default=0.0, help="added per word (default 0)")
    e.add_argument("--processes", type=int, default=1, help="beam search worker processes (default 1)")

    x = sub.add_parser(
        "export",
        help="write a small inference-only checkpoint",
        description="Strip optimiser and loop state from a training checkpoint.",
    )
    x.add_argument("checkpoint", help="training checkpoint")
    x.add_argument("output", help="where to write the exported model")
    return p


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


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
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from asr.checkpoint import CheckpointError, load_model
    from asr.inference import transcribe_files
    from asr.timing import format_transcript, transcript_dict

    fmt = "json" if args.json else args.format
    if args.timestamps and fmt == "txt":
        return _fail("--timestamps needs --format json, srt or vtt", EXIT_USAGE)
    timed = args.timestamps or fmt in ("srt", "vtt")
    if fmt in ("srt", "vtt") and len(args.audio) > 1 and not args.output_dir:
        return _fail(f"several files as {fmt} need --output-dir", EXIT_USAGE)
    try:
        model = load_model(args.model, args.device)
    except CheckpointError as e:
        return _fail(str(e), EXIT_CHECKPOINT)
    code = 0
    for r in transcribe_files(model, args.audio, timestamps=timed):
        if r.text is None:
            code = _fail(r.error, EXIT_BAD_AUDIO)
            continue
        if fmt in ("srt", "vtt"):
            out = format_transcript(r.words, fmt)
        elif fmt == "json":
            body = transcript_dict(r.words) if timed else {"text": r.text}
            out = json.dumps({"audio_filepath": r.path, **body}, ensure_ascii=False) + "\n"
        elif len(args.audio) == 1 or args.output_dir:
            out = r.text + "\n"
        else:
            out = f"{r.path}\t{r.text}\n"
        if args.output_dir:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.output_dir) / f"{Path(r.path).stem}.{fmt}").write_text(out, encoding="utf-8")
        else:
            print(out, end="", flush=True)
    return code


def _evaluate(args: argparse.Namespace) -> int:
    from asr.checkpoint import CheckpointError, load_model
    from asr.decode import DecoderConfig, DecoderError
    from asr.inference import evaluate_manifest
    from asr.manifest import ManifestError

    try:
        decoder = DecoderConfig(
            kind=args.decoder,
            beam_size=args.beam_size,
            lm=args.lm,
            lexicon=args.lexicon,
            lexicon_free=args.lexicon_free,
            lm_weight=args.lm_weight,
            word_score=args.word_score,
        )
        model = load_model(args.model, args.device)
        counts, skipped = evaluate_manifest(model, args.manifest, args.report, decoder, args.processes)
    except DecoderError as e:
        return _fail(str(e), EXIT_USAGE)
    except CheckpointError as e:
        return _fail(str(e), EXIT_CHECKPOINT)
    except ManifestError as e:
        return _fail(str(e), EXIT_MANIFEST)
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
    print(f"exported {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"train": _train, "transcribe": _transcribe, "evaluate": _evaluate, "export": _export}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
