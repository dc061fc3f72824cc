"""Shared fixtures: a small synthetic corpus and a briefly trained model, each made once per session."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from asr.config import load_config
from asr.manifest import read_manifest, write_manifest
from asr.synth import make_corpus
from asr.train import train

pytest_plugins = ["reliability_plugin"]

TINY_MODEL = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.conv_channels=4",
    "data.num_workers=0",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="session", autouse=True)
def model_store(tmp_path_factory) -> Path:
    """A model store of the tests' own: recipes run by tests register there, never in the user's."""
    home = tmp_path_factory.mktemp("asr_home")
    os.environ["ASR_HOME"] = str(home)  # subprocesses inherit it
    os.environ.pop("ASR_MODEL", None)
    return home


@pytest.fixture(scope="session")
def tiny_model() -> list[str]:
    """Config overrides for a model small enough to train in seconds."""
    return list(TINY_MODEL)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """24 train / 4 dev / 4 test utterances of eSpeak NG speech."""
    return make_corpus(tmp_path_factory.mktemp("corpus"), 24, 4, 4, seed=0)


@pytest.fixture(scope="session")
def trained_model(corpus, tmp_path_factory) -> Path:
    """A tiny model after one epoch: enough to exercise save, load and the CLI, not to be accurate."""
    exp = tmp_path_factory.mktemp("exp")
    cfg = load_config(
        None,
        [
            *TINY_MODEL,
            f"data.train_manifest={corpus['train']}",
            f"data.val_manifest={corpus['dev']}",
            f"exp_dir={exp}",
            "trainer.max_epochs=1",
        ],
    )
    logging.getLogger("asr").setLevel(logging.INFO)
    (best,) = train(cfg)
    return best


@pytest.fixture(scope="session")
def memorised(corpus, tmp_path_factory) -> tuple[Path, Path]:
    """A small model trained until it memorises 8 utterances: (best checkpoint, manifest of the 8)."""
    tmp = tmp_path_factory.mktemp("memorised")
    few = tmp / "few.jsonl"
    write_manifest(few, [vars(u) | {"line": None} for u in read_manifest(corpus["train"])[:8]])
    cfg = load_config(
        None,
        [
            f"data.train_manifest={few}",
            f"data.val_manifest={few}",
            f"exp_dir={tmp / 'exp'}",
            "data.max_batch_seconds=1000",
            "data.num_workers=0",
            "model.hidden_size=128",
            "model.num_layers=2",
            "model.conv_channels=16",
            "model.dropout=0.0",
            "specaug.freq_masks=0",
            "specaug.time_masks=0",
            "optim.lr=5e-3",  # memorised with a margin by epoch ~130 (3e-3 was marginal at 160)
            "optim.warmup_steps=10",
            "optim.weight_decay=0.0",
            "optim.final_lr_ratio=1.0",
            "trainer.max_epochs=160",
            "trainer.val_every_n_epochs=40",
            "trainer.progress_bar=false",
        ],
    )
    (best,) = train(cfg)
    return best, few
