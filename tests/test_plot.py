"""Plots: training curves from a run's events, and one file's alignment."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from asr.errors import DataError, OutputError
from asr.plot import plot_curves, read_curves


def test_curves_of_a_real_run(trained_model, tmp_path):
    exp = trained_model.parent.parent
    curves = read_curves(exp)
    assert {"train/loss", "val/wer"} <= set(curves)
    loss = curves["train/loss"]
    assert len(loss.steps) == len(loss.values) == len(loss.minutes) >= 1
    assert np.all(np.diff(loss.minutes) >= 0) and np.all(np.isfinite(loss.values))
    out = plot_curves([exp, exp], tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_curves_replace_their_own_png_but_never_an_event_file(trained_model, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(trained_model.parent.parent / "tensorboard", exp / "tensorboard")
    first = plot_curves([exp], exp / "curves.png").read_bytes()
    assert plot_curves([exp], exp / "curves.png").read_bytes()[:8] == first[:8] == b"\x89PNG\r\n\x1a\n"
    event = next(p for p in (exp / "tensorboard").rglob("*") if p.is_file())
    before = event.read_bytes()
    with pytest.raises(OutputError, match="refusing to overwrite the input"):
        plot_curves([exp], event)
    assert event.read_bytes() == before


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(DataError, match="no tensorboard folder"):
        read_curves(tmp_path)


def test_alignment_plot(trained_model, corpus, tmp_path):
    from asr.inference import Transcriber
    from asr.manifest import read_manifest
    from asr.plot import plot_alignment

    audio = read_manifest(corpus["test"])[0].audio_filepath
    out = plot_alignment(Transcriber.load(trained_model), audio, tmp_path / "align.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
