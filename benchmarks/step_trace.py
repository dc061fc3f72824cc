"""Where a training step leaves the GPU idle, read from a torch.profiler (Kineto) Chrome trace.

``device_timeline`` takes the trace's events and returns how long the window lasted, how much of it the
device spent running kernels, copies and memsets, and the longest idle gaps, each with the host work that
overlapped it most (operators, CUDA runtime calls) and the annotated phase it fell in (for example
"loop: step" or "loop: between steps", which ``gpu_check.py`` marks with ``record_function``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DEVICE_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}
HOST_CATEGORIES = {"cpu_op", "cuda_runtime", "cuda_driver"}


def read_trace(path: str | Path) -> list[dict]:
    """The complete ("X") events of a Chrome trace file, gzipped or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _span(e: dict) -> tuple[float, float]:
    return float(e["ts"]), float(e["ts"]) + float(e["dur"])


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def device_timeline(events: list[dict], top: int = 5, annotation_prefix: str = "") -> dict:
    """Device busy time and idle gaps of a trace window (times in the trace's microseconds, reported in ms).

    The window runs from the first to the last host or device event. ``gaps`` lists the ``top`` longest
    device-idle intervals, each with the three host events that overlap it most and the user annotation
    (those whose name starts with ``annotation_prefix``) it overlaps most.
    """
    if not events:
        return {"span_ms": 0.0, "busy_ms": 0.0, "busy_fraction": float("nan"), "gaps": []}
    spans = [_span(e) for e in events]
    window = (min(s for s, _ in spans), max(e for _, e in spans))
    busy = _merge([span for e, span in zip(events, spans) if e.get("cat") in DEVICE_CATEGORIES])
    edges = [window[0]] + [t for span in busy for t in span] + [window[1]]
    idle = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i + 1] > edges[i]]
    host = [(e["name"], span) for e, span in zip(events, spans) if e.get("cat") in HOST_CATEGORIES]
    notes = [
        (e["name"], span)
        for e, span in zip(events, spans)
        if e.get("cat") == "user_annotation" and e["name"].startswith(annotation_prefix)
    ]

    def overlapping(gap: tuple[float, float], named: list) -> list[tuple[float, str]]:
        """(overlap, name) of the events that overlap ``gap``, most first."""
        hits = [(_overlap(gap, span), name) for name, span in named]
        return sorted([h for h in hits if h[0] > 0], key=lambda h: h[0], reverse=True)

    gaps = []
    for gap in sorted(idle, key=lambda g: g[1] - g[0], reverse=True)[:top]:
        phases = overlapping(gap, notes)
        gaps.append(
            {
                "ms": round((gap[1] - gap[0]) / 1e3, 3),
                "at_ms": round((gap[0] - window[0]) / 1e3, 3),
                "phase": phases[0][1] if phases else "",
                "host": [f"{name} ({ms / 1e3:.2f} ms)" for ms, name in overlapping(gap, host)[:3]],
            }
        )
    span = window[1] - window[0]
    busy_time = sum(end - start for start, end in busy)
    return {
        "span_ms": round(span / 1e3, 3),
        "busy_ms": round(busy_time / 1e3, 3),
        "busy_fraction": busy_time / span if span > 0 else float("nan"),
        "gaps": gaps,
    }
