"""benchmarks/step_trace.py on a hand-made Chrome trace: busy time, idle gaps, and what ran in them."""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "step_trace", Path(__file__).resolve().parents[1] / "benchmarks" / "step_trace.py"
)
step_trace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_trace)
device_timeline, read_trace = step_trace.device_timeline, step_trace.read_trace


def event(cat: str, name: str, ts: float, dur: float) -> dict:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}


# Host: a 0-10 ms step, then 10-14 ms between steps. Device: kernels at 1-4 and 3-6 ms (overlapping), a copy
# at 12-13 ms. Idle: 0-1, 6-12 and 13-14 ms.
EVENTS = [
    event("user_annotation", "loop: step", 0, 10_000),
    event("user_annotation", "loop: between steps", 10_000, 4_000),
    event("cpu_op", "aten::_ctc_loss", 6_000, 3_000),
    event("cuda_runtime", "cudaStreamSynchronize", 6_500, 2_000),
    event("cpu_op", "aten::to", 11_000, 500),
    event("kernel", "lstm_fwd", 1_000, 3_000),
    event("kernel", "lstm_bwd", 3_000, 3_000),
    event("gpu_memcpy", "Memcpy HtoD", 12_000, 1_000),
]


def test_busy_time_merges_overlapping_device_work():
    t = device_timeline(EVENTS, annotation_prefix="loop:")
    assert t["span_ms"] == 14.0
    assert t["busy_ms"] == 6.0  # 1-6 ms merged, plus 12-13
    assert t["busy_fraction"] == pytest.approx(6 / 14)


def test_gaps_longest_first_with_their_phase_and_host_work():
    gaps = device_timeline(EVENTS, annotation_prefix="loop:")["gaps"]
    assert [(g["ms"], g["at_ms"]) for g in gaps] == [(6.0, 6.0), (1.0, 0.0), (1.0, 13.0)]
    assert gaps[0]["host"] == [
        "aten::_ctc_loss (3.00 ms)",
        "cudaStreamSynchronize (2.00 ms)",
        "aten::to (0.50 ms)",
    ]
    assert gaps[0]["phase"] == "loop: step"  # 4 ms of the 6 ms gap are in the step, 2 between steps
    assert gaps[1]["host"] == [] and gaps[2]["phase"] == "loop: between steps"


def test_reads_gzipped_traces_and_keeps_complete_events_only(tmp_path):
    path = tmp_path / "trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": [*EVENTS, {"ph": "i", "name": "marker", "ts": 0}]}, f)
    assert read_trace(path) == EVENTS
    assert device_timeline([])["gaps"] == []
