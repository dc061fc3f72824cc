"""The ``asr`` command: parses arguments and calls the library, nothing else.

Every subcommand runs through :func:`asr.errors.run_main`: an error is one line on stderr and its exit code
(0 success, 1 some input files could not be read, 2 usage, 3 bad config, 4 bad checkpoint, 5 bad manifest,
6 an output could not be written). Parsing imports no torch, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from asr.errors import EXIT_AUDIO, EXIT_OUTPUT, AsrError, AudioFailure, DataError, UsageError, run_main
from asr.longform import OVERLAP_S, WINDOW_S
from asr.text import HOTWORD_BONUS, parse_hotword

if TYPE_CHECKING:
    from tqdm import tqdm

    from asr.decoding import DecoderConfig
    from asr.inference import Transcript

ONEDNN_CACHE = 16  # asr serve: kernels oneDNN keeps compiled for recent input shapes

DESCRIPTION = """\
Train, evaluate and run CTC bidirectional-RNN speech recognisers.

  asr train --config conf/small.yaml data.train_manifest=train.jsonl data.val_manifest=dev.jsonl
  asr transcribe audio.wav --model exp/run/checkpoints/last.ckpt [--format srt]
  asr transcribe --manifest files.jsonl --model model.pt --json [--decoder beam --lm lm.arpa]
  asr evaluate test.jsonl --model model.ckpt --report report.jsonl [--decoder beam --lm lm.arpa]
  asr export exp/run/checkpoints/best.ckpt model.pt     (or model.onnx, for onnxruntime)
  asr transcribe audio.wav --model model.onnx           (onnxruntime, without torch)
  asr serve --model an4 --port 8000                     (OpenAI-compatible API and a web page)
  asr models                                            (the model store: names, WER, default)
  asr plot curves exp/run exp/other --out curves.png
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
        "EXP_DIR/checkpoints (best by validation CER, see trainer.select_by, and last.ckpt), logs to "
        "EXP_DIR/logs (CSV) and "
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
    _model_argument(r)
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
    r.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu; .onnx models: cpu)"
    )
    r.add_argument(
        "--window",
        type=float,
        default=WINDOW_S,
        help=f"files over this many seconds go in overlapping windows this long (default {WINDOW_S:g})",
    )
    r.add_argument(
        "--overlap",
        type=float,
        default=OVERLAP_S,
        help=f"seconds shared by windows, at most half a window (default {OVERLAP_S:g})",
    )
    r.add_argument(
        "--nbest", type=int, default=1, help="beam search: with --format json, also the N best hypotheses"
    )
    _decoder_arguments(r)

    e = sub.add_parser(
        "evaluate",
        help="WER/CER of a model on a manifest",
        description="Transcribe every utterance of a JSONL manifest and print corpus-level WER and CER.",
    )
    e.add_argument("manifest", help="JSONL manifest (audio_filepath, duration, text)")
    _model_argument(e)
    e.add_argument("--report", help="write one JSON line per utterance (reference, hypothesis, errors) here")
    e.add_argument("--device", default="cpu", help="torch device (default cpu)")
    _decoder_arguments(e)

    x = sub.add_parser(
        "export",
        help="write a small inference-only model, as a checkpoint or as ONNX",
        description="Strip optimiser and loop state from a training checkpoint. An OUTPUT ending in .onnx "
        "is an ONNX model (the encoder as a graph; its spec and front end constants in the metadata) that "
        "onnxruntime runs without torch, the front end in NumPy.",
    )
    x.add_argument("checkpoint", help="training checkpoint or exported model")
    x.add_argument("output", help="where to write the exported model (.pt, or .onnx)")
    x.add_argument(
        "--int8",
        action="store_true",
        help="ONNX only: 8-bit weights (dynamic quantisation): a quarter of the size, faster on the CPU, "
        "slightly less accurate",
    )

    s = sub.add_parser(
        "serve",
        help="serve a model over HTTP: OpenAI-compatible API, our own API and a web page",
        description="Serve one model on HTTP (FastAPI + uvicorn): POST /v1/audio/transcriptions "
        "(OpenAI-compatible), POST /v1/asr/transcriptions (beam search, hotwords, n-best, timings), "
        "GET /health, GET /v1/models, and a web page at /. Concurrent requests are batched.",
    )
    _model_argument(s)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/* (default: none)")
    s.add_argument("--name", help="the model's name in /v1/models (default: its file name)")
    s.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload (default 25)")
    s.add_argument("--max-duration", type=float, default=3600.0, help="longest audio, seconds (default 3600)")
    s.add_argument("--max-queue", type=int, default=64, help="requests waiting at most (default 64)")
    s.add_argument("--batch-wait", type=float, default=0.05, help="seconds to gather a batch (default 0.05)")
    s.add_argument("--device", default="cpu", help="torch device (default cpu; .onnx models: cpu)")
    s.add_argument("--lm", help="word n-gram LM for decoder=beam requests (ARPA or KenLM binary)")
    s.add_argument("--lexicon", help="lexicon for decoder=beam requests (default with --lm: the LM's words)")
    s.add_argument("--beam-size", type=int, default=50, help="beam size for decoder=beam (default 50)")
    s.add_argument("--lm-weight", type=float, default=2.0, help="LM weight (default 2)")
    s.add_argument("--word-score", type=float, default=0.0, help="word score (default 0)")

    m = sub.add_parser(
        "models",
        help="list the model store, set its default, or add a model to it",
        description="The per-user model store ($ASR_HOME, default ~/.cache/asr): recipes register the models "
        "they train; --model takes a store name anywhere a path is accepted, and with no --model the "
        "commands use $ASR_MODEL, else the default.",
    )
    m.add_argument("action", nargs="?", choices=("list", "default", "add"), default="list")
    m.add_argument("name", nargs="?", help="model name (default, add)")
    m.add_argument("path", nargs="?", help="model file (add)")

    g = sub.add_parser("plot", help="plot training curves, or one file's alignment (needs asr[plot])")
    g.add_argument("kind", choices=("curves", "align"))
    g.add_argument("inputs", nargs="+", help="curves: experiment folders; align: one audio file")
    g.add_argument("--out", required=True, help="PNG file to write")
    g.add_argument("--model", help="align: model file or store name (default: $ASR_MODEL or the default)")
    return p


def _model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="model file (checkpoint, exported .pt, or .onnx: run by onnxruntime without torch) or the name "
        "of a model in the store; default $ASR_MODEL, else the store's default (asr models)",
    )


def _hotword(value: str) -> tuple[str, float]:
    try:
        return parse_hotword(value)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_beam_arguments(p: argparse.ArgumentParser, lm_required: bool = False) -> None:
    """Beam search's options, declared once for the ``asr`` commands and the tools (read by
    :func:`beam_config`): ``--lm``, ``--lexicon``, ``--lexicon-free``, ``--beam-size`` and
    ``--beam-size-token``."""
    p.add_argument(
        "--lm",
        required=lm_required,
        help="word n-gram LM for beam search: ARPA (tools/build_lm.py), or a KenLM binary with --lexicon",
    )
    p.add_argument("--lexicon", help="'word c h a r s |' lines (default with --lm: the LM's words)")
    p.add_argument("--lexicon-free", action="store_true", help="beam search: any character string is a word")
    p.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame (default 50)")
    p.add_argument(
        "--beam-size-token",
        type=int,
        help="beam search: tokens tried per frame, the likeliest first (default: all; with 512 pieces, "
        "--lexicon-free and --lm, 8 took seconds per utterance where all took minutes)",
    )


def beam_config(args: argparse.Namespace, **fields: Any) -> DecoderConfig:
    """A :class:`DecoderConfig` from the options of :func:`add_beam_arguments`, plus ``fields``."""
    from asr.decoding import DecoderConfig

    return DecoderConfig(
        beam_size=args.beam_size,
        beam_size_token=args.beam_size_token,
        lm=args.lm,
        lexicon=args.lexicon,
        lexicon_free=args.lexicon_free,
        **fields,
    )


def _decoder_arguments(p: argparse.ArgumentParser) -> None:
    """The decoding options shared by transcribe and evaluate."""
    p.add_argument(
        "--decoder", choices=("greedy", "beam"), default="greedy", help="greedy (default) or beam search"
    )
    add_beam_arguments(p)
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
    return beam_config(
        args,
        kind=args.decoder,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
        nbest=getattr(args, "nbest", 1),
        hotwords=tuple(args.hotword),
    )


def _progress_bar(args: argparse.Namespace, total: int) -> tqdm:
    """A files progress bar on stderr, off with --quiet or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, disable=True if args.quiet else None)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from asr.config import load_config
    from asr.train import train

    cfg = load_config(args.config, args.overrides)
    print(f"model checkpoint(s): {', '.join(str(p) for p in train(cfg))}")
    return 0


def _render(r: Transcript, fmt: str, timed: bool, bare: bool) -> str:
    """One transcript as the output format: ``bare`` txt is the text alone (one file, or a file per input)."""
    from asr.timing import format_transcript, transcript_dict

    if fmt in ("srt", "vtt"):
        return format_transcript(r.words or [], fmt)
    if fmt == "json":
        body = transcript_dict(r.words or []) if timed else {"text": r.text}
        if r.nbest is not None and len(r.nbest) > 1:
            body["nbest"] = [{"text": h.text, "score": round(h.score, 3)} for h in r.nbest]
        return json.dumps({"audio_filepath": r.path, **body}, ensure_ascii=False) + "\n"
    return f"{r.text}\n" if bare else f"{r.path}\t{r.text}\n"


def _transcribe(args: argparse.Namespace) -> int:
    from asr.inference import Transcriber, output_paths
    from asr.manifest import read_audio_paths
    from asr.outputs import check_output_dir, refuse_overwrite, write_text_atomic

    fmt = "json" if args.json else args.format
    if args.timestamps and fmt == "txt":
        raise UsageError("--timestamps needs --format json, srt or vtt")
    timed = args.timestamps or fmt in ("srt", "vtt")
    paths = [*args.audio, *(read_audio_paths(args.manifest) if args.manifest else [])]
    if not paths:
        raise UsageError("give audio files or --manifest")
    if fmt in ("srt", "vtt") and len(paths) > 1 and not args.output_dir:
        raise UsageError(f"several files as {fmt} need --output-dir")
    outputs = output_paths(paths, args.output_dir, f".{fmt}") if args.output_dir else []
    inputs = [*paths, *[f for f in (args.model, args.manifest) if f]]
    for out in outputs:
        refuse_overwrite(out, inputs)
    if args.output_dir:
        check_output_dir(args.output_dir)
    decoder = _decoder_config(args)
    model = Transcriber.load(args.model, args.device)
    stream = model.stream(
        paths,
        decoder,
        timestamps=timed,
        window_s=args.window,
        overlap_s=args.overlap,
        processes=args.processes,
    )
    unreadable, failed = 0, []
    results: list[Transcript | None] = [None] * len(paths)
    with _progress_bar(args, len(paths)) as bar:
        for i, r in stream:
            bar.update(1)
            if outputs and r.text is not None:  # each file written as soon as it is ready
                try:
                    write_text_atomic(outputs[i], _render(r, fmt, timed, bare=True))
                except AsrError as e:
                    failed.append(str(e))
            elif outputs:
                unreadable += 1
                _error(r.error or f"{r.path}: unreadable")
            else:
                results[i] = r
    for r in results if not outputs else []:
        if r is None or r.text is None:
            unreadable += 1
            _error(r.error if r is not None and r.error else "unreadable input")
            continue
        print(_render(r, fmt, timed, bare=len(paths) == 1), end="", flush=True)
    for line in failed:
        _error(line)
    if failed:
        _error(f"{len(failed)} of {len(paths)} transcript(s) could not be written; the others were")
        return EXIT_OUTPUT
    return EXIT_AUDIO if unreadable else 0


def _evaluate(args: argparse.Namespace) -> int:
    from asr.inference import Transcriber
    from asr.manifest import read_manifest
    from asr.metrics import format_rate
    from asr.outputs import refuse_overwrite

    if args.report:
        refuse_overwrite(args.report, [f for f in (args.manifest, args.model) if f])
    decoder = _decoder_config(args)
    model = Transcriber.load(args.model, args.device)
    utts = read_manifest(args.manifest)
    if not utts:
        raise DataError(f"{args.manifest}: no utterances to evaluate")
    with _progress_bar(args, len(utts)) as bar:
        counts, skipped = model.evaluate(utts, decoder, args.report, args.processes, progress=bar.update)
    print(
        f"WER {format_rate(counts.wer)} ({counts.word_errors}/{counts.words})  "
        f"CER {format_rate(counts.cer)} ({counts.char_errors}/{counts.chars})"
    )
    if skipped:
        raise AudioFailure(f"{skipped} unreadable file(s) skipped (each named above)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from asr.checkpoint import export_model

    if args.output.lower().endswith(".onnx"):
        from asr.checkpoint import load_recognizer
        from asr.onnx_export import export_onnx
        from asr.outputs import refuse_overwrite

        refuse_overwrite(args.output, [args.checkpoint])
        export_onnx(load_recognizer(args.checkpoint), args.output, int8=args.int8)
    elif args.int8:
        raise UsageError("--int8 applies to an ONNX export (an OUTPUT ending in .onnx)")
    else:
        export_model(args.checkpoint, args.output)
    print(f"exported {args.output}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    # oneDNN caches compiled kernels for every input shape it sees, and a server sees new shapes with almost
    # every batch: at its default (1024 entries) the cache grew the server by 138 MiB over 2000 requests
    # (benchmarks/serve_soak.py), at 16 by 9 MiB. oneDNN reads it when torch first runs a kernel: set it here.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))

    from asr.decoding import DecoderConfig
    from asr.inference import Transcriber
    from asr.serve.app import ServeSettings, create_app
    from asr.serve.runner import serve
    from asr.store import resolve

    path = resolve(args.model)
    beam = DecoderConfig(
        "beam",
        beam_size=args.beam_size,
        lm=args.lm,
        lexicon=args.lexicon,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
    )
    settings = ServeSettings(
        model_name=args.name or (args.model if args.model and not Path(args.model).exists() else path.stem),
        api_key=args.api_key,
        max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration,
        max_queue=args.max_queue,
        max_wait_s=args.batch_wait,
        beam=beam,
    )
    transcriber = Transcriber.load(path, args.device)
    app = create_app(transcriber, settings)  # a bad LM or lexicon fails now, not at the first request
    serve(app, args.host, args.port)
    return 0


def _models(args: argparse.Namespace) -> int:
    from asr import store

    if args.action == "default":
        if not args.name:
            raise UsageError("asr models default NAME")
        store.set_default(args.name)
        print(f"default model: {args.name}")
        return 0
    if args.action == "add":
        if not (args.name and args.path):
            raise UsageError("asr models add NAME PATH")
        entry = store.register(args.path, args.name)
        print(f"added {entry.name}: {entry.path}")
        return 0
    models, default = store.list_models(), store.default_name()
    if not models:
        print(f"no models in {store.home() / 'models'} (the offline demo registers one)")
        return 0
    print(f"{'':2}{'name':20} {'test WER':>8} {'size':>9}  {'date':19}  data")
    for m in models:
        wer = f"{m.test_wer:.2f}%" if m.test_wer is not None else "-"
        mark = "* " if m.name == default else "  "
        print(f"{mark}{m.name:20} {wer:>8} {m.size_bytes / 2**20:7.1f} MB  {m.created:19}  {m.data}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from asr.plot import plot_alignment, plot_curves

    if args.kind == "curves":
        out = plot_curves(args.inputs, args.out)
    else:
        from asr.inference import Transcriber

        if len(args.inputs) != 1:
            raise UsageError("asr plot align takes one audio file")
        out = plot_alignment(Transcriber.load(args.model), args.inputs[0], args.out)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the subcommand; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "train": _train,
        "transcribe": _transcribe,
        "evaluate": _evaluate,
        "export": _export,
        "serve": _serve,
        "models": _models,
        "plot": _plot,
    }
    return run_main(lambda: commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
