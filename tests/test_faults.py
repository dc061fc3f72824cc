"""Faults during checkpoint writes: SIGKILL at random moments, a full disk, the kernel's file-size limit.

Writers run in forked child processes (torch is already imported, so a child starts at once) and are
killed with SIGKILL, which no handler can intercept.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability import record

from asr.checkpoint import load_checkpoint, save_atomic

FORK = multiprocessing.get_context("fork")
PAYLOAD = 1 << 21  # float32 values: 8 MiB a checkpoint, so a kill usually lands mid-write


def _checkpoint(step: int) -> dict:
    """A checkpoint whose every value encodes ``step``, so a torn mix of two writes is detectable.

    Built with NumPy: in a forked child, torch's OpenMP pool (already used by the parent) can deadlock.
    """
    return {"asr": {"step": step}, "state_dict": {"w": torch.from_numpy(np.full(PAYLOAD, step, np.float32))}}


def _step_of(path: Path) -> int:
    """The step of a complete checkpoint at ``path``; fails on a torn or unreadable one."""
    ckpt = load_checkpoint(path)
    step = ckpt["asr"]["step"]
    weights = ckpt["state_dict"]["w"]
    assert weights.shape == (PAYLOAD,) and bool((weights == step).all())
    return step


def _writer(path: Path, first: int, ready) -> None:
    """Save checkpoints first, first + 1, ... forever, signalling after the first completes."""
    step = first
    while True:
        save_atomic(_checkpoint(step), path)
        if step == first:
            ready.set()
        step += 1


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def test_sigkill_during_writes_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(_checkpoint(0), path)
    rng = random.Random(0)
    last = 0
    for _ in range(8):
        ready = FORK.Event()
        child = FORK.Process(target=_writer, args=(path, last + 1, ready), daemon=True)
        child.start()
        assert ready.wait(60), "the writer never finished a checkpoint"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        step = _step_of(path)  # complete: the old or a new checkpoint, never a torn one
        assert step > last  # the first save of this child completed
        last = step
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["last.ckpt"]
        record("checkpoint: SIGKILL during save_atomic", "complete checkpoint")
    save_atomic(_checkpoint(last + 1), path)  # the next save clears what killed writers left behind
    assert _temporaries(tmp_path) == [] and _step_of(path) == last + 1


def _stalled_writer(path: Path, stalled) -> None:
    """Save, stopping for good inside fsync: the new data is written but not yet renamed into place."""

    def stall(fd: int) -> None:
        stalled.set()
        time.sleep(600)

    os.fsync = stall
    save_atomic(_checkpoint(2), path)


def test_sigkill_between_write_and_rename(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(_checkpoint(1), path)
    stalled = FORK.Event()
    child = FORK.Process(target=_stalled_writer, args=(path, stalled), daemon=True)
    child.start()
    assert stalled.wait(60)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    (orphan,) = _temporaries(tmp_path)  # the killed writer's complete but unrenamed file
    assert orphan.name.startswith(".last.ckpt.") and orphan.stat().st_size > PAYLOAD * 4
    assert _step_of(path) == 1  # the old checkpoint, untouched
    save_atomic(_checkpoint(3), path)
    assert _temporaries(tmp_path) == [] and _step_of(path) == 3
    record("checkpoint: SIGKILL during save_atomic", "complete checkpoint")


def _enospc(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("stage", ["fsync", "replace"])
def test_full_disk_keeps_old_checkpoint_and_says_so(tmp_path, monkeypatch, stage):
    path = tmp_path / "last.ckpt"
    save_atomic(_checkpoint(1), path)
    monkeypatch.setattr(os, stage, _enospc)
    with pytest.raises(OSError) as e:
        save_atomic(_checkpoint(2), path)
    monkeypatch.undo()
    message = str(e.value)
    assert e.value.errno == errno.ENOSPC and "\n" not in message
    assert f"{path}: cannot write (No space left on device)" in message
    assert _step_of(path) == 1 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    record("checkpoint: full disk", "OSError, old checkpoint intact")


def _limited_writer(path: Path, limit: int, queue) -> None:
    """Save under a file-size limit, as on a nearly full disk; report the error message."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then fails the write with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        save_atomic(_checkpoint(2), path)
    except OSError as e:
        queue.put((e.errno, str(e)))
    else:
        queue.put((0, "saved"))


def test_kernel_refusing_the_write_keeps_old_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    save_atomic(_checkpoint(1), path)
    queue = FORK.Queue()
    child = FORK.Process(target=_limited_writer, args=(path, PAYLOAD, queue))  # half the size needed
    child.start()
    code, message = queue.get(timeout=60)
    child.join(10)
    assert code == errno.EFBIG, message
    assert message.startswith(f"{path}: cannot write (File too large)")
    assert _step_of(path) == 1 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    record("checkpoint: file-size limit (real write failure)", "OSError, old checkpoint intact")
