"""Plots of what training did and of what the model hears (matplotlib, from the ``[plot]`` extra).

- :func:`plot_curves`: training loss and dev WER/CER of one or more runs, against optimiser step and against
  wall-clock time, read from each run's TensorBoard events (which carry both).
- :func:`plot_alignment`: one file's waveform, log-mel features, CTC posteriorgram and word boundaries.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr.errors import DataError, UsageError
from asr.outputs import refuse_overwrite, write_bytes_atomic

if TYPE_CHECKING:
    from asr.inference import Transcriber

CURVES = (("train/loss", "training loss"), ("val/wer", "dev WER"), ("val/cer", "dev CER"))


def _save(plt, fig, out: str | Path) -> Path:  # noqa: ANN001 - matplotlib's module and figure
    """Write the figure as PNG atomically (:func:`asr.outputs.write_bytes_atomic`) and close it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(out, buffer.getvalue())
    return Path(out)


def _pyplot():  # noqa: ANN202 - matplotlib's module
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'asr[plot]'") from None
    return plt


@dataclass
class Curve:
    steps: np.ndarray
    minutes: np.ndarray  # wall-clock minutes since the run's first event (a resumed run includes its pause)
    values: np.ndarray


def read_curves(exp_dir: str | Path) -> dict[str, Curve]:
    """The run's scalars named in :data:`CURVES`, from ``EXP_DIR/tensorboard``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = Path(exp_dir) / "tensorboard"
    if not folder.is_dir():
        raise DataError(f"{exp_dir}: no tensorboard folder (is it an experiment folder of asr train?)")
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    scalars = {tag: events.Scalars(tag) for tag, _ in CURVES if tag in tags}
    if not scalars:
        raise DataError(f"{exp_dir}: no training curves logged yet")
    start = min(s[0].wall_time for s in scalars.values() if s)
    return {
        tag: Curve(
            np.array([e.step for e in s]),
            np.array([(e.wall_time - start) / 60 for e in s]),
            np.array([e.value * (100 if tag != "train/loss" else 1) for e in s]),
        )
        for tag, s in scalars.items()
    }


def plot_curves(exp_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Loss, dev WER and dev CER (rows) against step and wall-clock minutes (columns), runs overlaid."""
    if not exp_dirs:
        raise UsageError("give at least one experiment folder")
    plt = _pyplot()
    runs = {str(d): read_curves(d) for d in exp_dirs}
    # the inputs are the event files: a run's own curves.png beside them is an output, replaced on a rerun
    refuse_overwrite(out, [p for d in exp_dirs for p in (Path(d) / "tensorboard").rglob("*") if p.is_file()])
    fig, axes = plt.subplots(len(CURVES), 2, figsize=(11, 9), sharex="col", squeeze=False)
    for row, (tag, label) in enumerate(CURVES):
        for name, curves in runs.items():
            if tag in curves:
                c = curves[tag]
                axes[row][0].plot(
                    c.steps, c.values, label=Path(name).name, marker="." if tag != "train/loss" else ""
                )
                axes[row][1].plot(
                    c.minutes, c.values, label=Path(name).name, marker="." if tag != "train/loss" else ""
                )
        axes[row][0].set_ylabel(label + (" (%)" if tag != "train/loss" else ""))
        for ax in axes[row]:
            ax.grid(alpha=0.3)
            if tag != "train/loss":
                ax.set_ylim(0, min(100, max(ax.get_ylim()[1], 1)))
    axes[-1][0].set_xlabel("optimiser step")
    axes[-1][1].set_xlabel("wall-clock minutes")
    axes[0][0].legend(fontsize=8)
    return _save(plt, fig, out)


def plot_alignment(transcriber: Transcriber, audio: str | Path, out: str | Path) -> Path:
    """Waveform, normalised log-mel, CTC posteriorgram and word boundaries of one (short) file."""
    import torch

    from asr.audio import SAMPLE_RATE, load_audio

    plt = _pyplot()
    refuse_overwrite(out, [audio])
    wave = load_audio(audio)
    (result,) = transcriber.transcribe([wave], timestamps=True)
    recognizer = transcriber.recognizer
    with torch.inference_mode():
        waves, lens = recognizer.pad([wave])
        feats, _ = recognizer.frontend(waves, lens)  # (1, T, n_mels)
    ((log_probs, frames),) = transcriber.emissions([wave])
    seconds = len(wave) / SAMPLE_RATE
    frame_s = recognizer.frame_seconds
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    axes[0].plot(np.arange(len(wave)) / SAMPLE_RATE, wave, linewidth=0.4, color="0.2")
    axes[0].set_ylabel("waveform")
    axes[1].imshow(
        feats[0].float().cpu().numpy().T,
        origin="lower",
        aspect="auto",
        extent=(0, seconds, 0, feats.shape[2]),
    )
    axes[1].set_ylabel("log-mel bin")
    posteriors = np.exp(log_probs[:frames]).T  # (V, T')
    axes[2].imshow(
        posteriors,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        extent=(0, frames * frame_s, 0, len(posteriors)),
    )
    symbols = [s if s.strip() else "␣" for s in transcriber.tokenizer.symbols]
    if len(symbols) <= 64:
        axes[2].set_yticks(np.arange(len(symbols)) + 0.5, symbols, fontsize=6)
    axes[2].set_ylabel("CTC posterior")
    axes[2].set_xlabel("seconds")
    for word in result.words or []:
        for ax in axes:
            ax.axvspan(word.start, word.end, color="tab:orange", alpha=0.12)
        axes[0].text(
            (word.start + word.end) / 2, axes[0].get_ylim()[1] * 0.85, word.text, ha="center", fontsize=8
        )
    axes[0].set_title(result.text or "(no speech recognised)", fontsize=10)
    return _save(plt, fig, out)
