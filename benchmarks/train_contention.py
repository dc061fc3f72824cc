"""Training throughput on a shared CPU: alone, beside one busy single-threaded process, with one that starts
or ends while training runs, and with the thread policies of ``asr.threads``, side by side in one run.

Usage:
    python benchmarks/train_contention.py [--manifest data/an4/train.jsonl] [--config conf/small.yaml]
        [--steps 16] [--batches 4] [--batch-seconds 200] [--rounds 2] [--variants idle busy busy-auto ...]

The step is the small config's training step outside Lightning (``CTCModule.fit_step``: log-mel features,
SpecAugment, encoder, CTC, backward, clipping, fused AdamW; no loader) in the precision that
``trainer.precision=auto`` gives on this CPU (``--precision`` to choose), on ``--batches`` length-sorted
batches of about ``--batch-seconds`` padded audio picked evenly over the length range and held in memory
(``benchmarks/peer_deepspeech.py``'s). The data: ``--manifest``, else AN4 from ../shared/data/an4 when it is
there, else a synthetic corpus (``benchmarks/train_throughput.py``'s). One pass over the batches warms up,
then ``--steps`` timed steps cycle through them; the rate is unpadded audio-seconds per wall-clock second over
the timed steps.

Variants, each in a process of its own (the OpenMP runtime reads its wait policy once, when torch loads it):

- ``idle``: torch's default intra-op threads, nothing else running.
- ``idle-auto``: the threads ``asr.threads.choose_threads(0)`` picks (which samples the CPUs first).
- ``idle-passive``: default threads, ``OMP_WAIT_POLICY=PASSIVE`` (``asr.threads.passive_openmp``).
- ``busy``, ``busy-auto``, ``busy-passive``: the same beside one busy process, a pure-Python loop that keeps
  one core busy, started half a second before the variant's process and stopped after it.
- ``late``: the threads ``choose_threads(0)`` picks while the CPUs are idle; the busy process starts after the
  warm-up pass, before the timed steps. ``ended``: the threads it picks beside the busy process, which stops
  after the warm-up pass. ``late-follow`` and ``ended-follow``: the same, with ``asr.threads.ThreadRetuner``
  polled after every step as training does (``asr.train.FollowFreeCores``); the threads column gives the
  count at each change, "2>1@1" for 2 threads, then 1 from the step after step 1.

Each round runs every variant once, in order; the table gives each round's rate, their mean and its ratio to
``idle``'s mean. With the defaults a round should take about 3 minutes on the project's 2-core CPU in bf16
(about 6 minutes for the run, by RESULTS.md's rates). Run it with nothing else busy: the first line says how
idle the CPUs were.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asr.threads import ThreadRetuner, allowed_cpus, choose_threads, measure_idle, passive_openmp

VARIANTS = (
    "idle",
    "idle-auto",
    "idle-passive",
    "busy",
    "busy-auto",
    "busy-passive",
    "late",
    "late-follow",
    "ended",
    "ended-follow",
)
CHANGING = ("late", "ended")  # the busy process starts or stops between the warm-up and the timed steps
SPIN = "while True: pass"  # one busy core, single-threaded


def variant_run(run: dict) -> dict:
    """One variant in this (fresh) process: the threads it trained with and its rate in audio-s/s.

    ``run``: variant, config, manifest, batches, budget, precision, steps, and the paths of the files by
    which the ``late`` and ``ended`` variants hand over with their parent (warm, go).
    """
    kind, _, policy = run["variant"].partition("-")
    if policy == "passive":
        passive_openmp()
    # samples the CPUs while nothing of ours runs
    threads = choose_threads(0) if policy == "auto" or kind in CHANGING else 0
    # torch only now: the OpenMP runtime it loads reads OMP_WAIT_POLICY once, at load
    import torch

    # benchmarks/, this script's folder
    from peer_deepspeech import cycled_rate, make_batches, our_batch, ours_step

    from asr.audio import SAMPLE_RATE

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    raw, _ = make_batches(Path(run["manifest"]), run["batches"], run["budget"])
    step, _, tokenizer = ours_step(run["config"], run["precision"] == "bf16-mixed")
    batches = [our_batch(b, tokenizer) for b in raw]
    audio = [int(b.wave_lens.sum()) / SAMPLE_RATE for b in batches]
    if kind not in CHANGING:
        rate = cycled_rate(step, batches, audio, run["steps"])
        return {"threads": str(torch.get_num_threads()), "rate": rate}
    retuner: list[ThreadRetuner] = []
    counts = [str(torch.get_num_threads())]

    def warmed() -> None:  # the parent now starts or stops the busy process
        Path(run["warm"]).touch()
        while not Path(run["go"]).exists():
            time.sleep(0.05)
        if policy == "follow":
            retuner.append(ThreadRetuner(torch.get_num_threads()))

    def after_step(i: int) -> None:
        if retuner and (threads := retuner[0].poll()) is not None:
            torch.set_num_threads(threads)
            counts.append(f"{threads}@{i}")

    rate = cycled_rate(step, batches, audio, run["steps"], warmed, after_step)
    return {"threads": ">".join(counts), "rate": rate}


def wait_for(path: Path, child: subprocess.Popen) -> None:
    """Wait until ``path`` exists; raise if ``child`` exits first."""
    while not path.exists():
        if child.poll() is not None:
            raise subprocess.CalledProcessError(child.returncode, child.args)
        time.sleep(0.05)


def in_fresh_process(run: dict, work: Path) -> dict:
    """:func:`variant_run` in a new Python process, beside a busy one for the ``busy`` variants, or one that
    starts (``late``) or stops (``ended``) after the warm-up pass."""
    result, warm, go = work / "result.json", work / "warm", work / "go"
    for path in (result, warm, go):
        path.unlink(missing_ok=True)
    run = {**run, "warm": str(warm), "go": str(go)}
    command = [sys.executable, str(Path(__file__).resolve()), "--variant-run", json.dumps(run)]
    kind = run["variant"].partition("-")[0]
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if kind in ("busy", "ended") else None
    try:
        if spinner is not None:
            time.sleep(0.5)  # spinning before the variant starts (and samples the CPUs)
        child = subprocess.Popen([*command, "--result", str(result)])
        if kind in CHANGING:
            wait_for(warm, child)
            if spinner is None:
                spinner = subprocess.Popen([sys.executable, "-c", SPIN])
                time.sleep(0.5)
            else:
                spinner.kill()
                spinner.wait()
                spinner = None
            go.touch()
        if child.wait() != 0:
            raise subprocess.CalledProcessError(child.returncode, command)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(result.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, help="training data (default: AN4 if there, else synthetic)")
    p.add_argument("--config", default="conf/small.yaml")
    p.add_argument(
        "--precision", default="auto", help="as trainer.precision (auto: bf16 with AMX, else fp32)"
    )
    p.add_argument("--batch-seconds", type=float, default=200.0, help="padded audio per batch")
    p.add_argument("--batches", type=int, default=4, help="distinct batches (one untimed pass warms up)")
    p.add_argument("--steps", type=int, default=16, help="timed steps per variant")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--variant-run", help=argparse.SUPPRESS)  # one variant, in its own process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant_run:
        args.result.write_text(json.dumps(variant_run(json.loads(args.variant_run))))
        return
    if min(args.batches, args.steps, args.rounds) < 1:
        p.error("--batches, --steps and --rounds must be at least 1")
    # torch (through train_throughput) in this process only: the variants' processes load it themselves
    from train_throughput import default_manifest, describe  # benchmarks/, this script's folder

    from asr.train import resolve_precision

    precision = resolve_precision(args.precision, "cpu")
    cpus = allowed_cpus()
    idle = measure_idle(cpus, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = args.manifest or default_manifest(work)
        print(describe(manifest))
        print(
            f"precision {precision}; batches {args.batches} x {args.batch_seconds:g} s padded, "
            f"{args.steps} timed steps; CPUs {len(cpus)}, idle at start {idle:.2f}"
            + ("" if idle > len(cpus) - 0.25 else "  (NOT idle: the figures are not comparable)"),
            flush=True,
        )
        rates: dict[str, list[float]] = {v: [] for v in args.variants}
        threads: dict[str, set[str]] = {v: set() for v in args.variants}
        for r in range(args.rounds):
            for variant in args.variants:
                run = {
                    "variant": variant,
                    "config": args.config,
                    "manifest": str(manifest),
                    "batches": args.batches,
                    "budget": args.batch_seconds,
                    "precision": precision,
                    "steps": args.steps,
                }
                result = in_fresh_process(run, work)
                rates[variant].append(result["rate"])
                threads[variant].add(result["threads"])
                print(f"round {r + 1} {variant:<13} threads {result['threads']}  {result['rate']:.1f} a-s/s")
    base = statistics.mean(rates["idle"]) if "idle" in rates else float("nan")
    rounds = "".join(f"{f'round {r + 1}':>9}" for r in range(args.rounds))
    print(f"\n{'variant':<14}{'threads':>12}{rounds}{'mean a-s/s':>11}{'/ idle':>8}")
    for variant in args.variants:
        mean = statistics.mean(rates[variant])
        used = "/".join(sorted(threads[variant]))
        cells = "".join(f"{rate:>9.1f}" for rate in rates[variant])
        print(f"{variant:<14}{used:>12}{cells}{mean:>11.1f}{mean / base:>8.2f}")


if __name__ == "__main__":
    main()
