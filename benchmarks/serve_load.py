"""Serving throughput and latency of ``asr serve``: dynamic batching against one request at a time.

Usage:
    python benchmarks/serve_load.py --model exp/an4/model.pt --manifest data/an4/test.jsonl [--clients 32]

Starts the server in this process (uvicorn on 127.0.0.1, a free port), then, in one run and on the same
files: "serial" sends every file one after another from one client (each request is its own batch), and
"batched" sends them from ``--clients`` concurrent clients (asyncio + httpx), so the server gathers them into
batches. Prints requests per second, audio seconds per second, and p50/p95 latency for both, and the
largest batch the server formed. Each valid reply is checked against the transcript of the same file from
``Transcriber.transcribe`` (identical greedy text).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import httpx
import soundfile as sf

import asr
from asr.cli import ONEDNN_CACHE
from asr.manifest import read_manifest
from asr.serve.app import ServeSettings, create_app
from asr.serve.runner import background


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def load(
    url: str, bodies: list[tuple[str, bytes]], clients: int
) -> tuple[float, list[float], list[str]]:
    """Wall seconds, per-request latencies and texts, with ``clients`` requests in flight at a time."""
    latencies: list[float] = [0.0] * len(bodies)
    texts: list[str] = [""] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            start = time.perf_counter()
            r = await http.post(f"{url}/v1/audio/transcriptions", files={"file": bodies[i]})
            r.raise_for_status()
            latencies[i], texts[i] = time.perf_counter() - start, r.json()["text"]

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return time.perf_counter() - start, latencies, texts


def main() -> None:
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))  # as asr serve runs
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--max-wait", type=float, default=0.05, help="the server's batching wait, seconds")
    args = p.parse_args()
    transcriber = asr.load_model(args.model)
    paths = [Path(u.audio_filepath) for u in read_manifest(args.manifest)]
    bodies = [(p.name, p.read_bytes()) for p in paths]
    audio = sum(sf.info(p).duration for p in paths)
    expected = [t.text for t in transcriber.transcribe(paths)]
    settings = ServeSettings(max_wait_s=args.max_wait, max_queue=max(64, 2 * args.clients))
    with background(create_app(transcriber, settings)) as url:
        asyncio.run(load(url, bodies[:8], 1))  # warm-up
        rows = {}
        for name, clients in (("serial", 1), ("batched", args.clients)):
            wall, latencies, texts = asyncio.run(load(url, bodies, clients))
            wrong = sum(t != e for t, e in zip(texts, expected))
            rows[name] = (wall, latencies, wrong)
        largest = httpx.get(f"{url}/health").json()["largest_batch"]
    print(f"{len(paths)} files, {audio:.1f} s of audio; largest batch formed: {largest}")
    print("mode      clients  req/s   audio-s/s  p50 ms  p95 ms  wrong")
    for name, (wall, latencies, wrong) in rows.items():
        clients = 1 if name == "serial" else args.clients
        print(
            f"{name:8}  {clients:7d}  {len(paths) / wall:6.1f}  {audio / wall:9.1f}  "
            f"{1000 * statistics.median(latencies):6.0f}  {1000 * percentile(latencies, 0.95):6.0f}  {wrong}"
        )
    print(f"speed-up: {rows['serial'][0] / rows['batched'][0]:.2f}x")


if __name__ == "__main__":
    main()
