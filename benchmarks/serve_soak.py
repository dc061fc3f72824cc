"""Soak test of ``asr serve``: many mixed requests, then: is it up, were the valid ones right, did it leak?

Usage:
    python benchmarks/serve_soak.py --model exp/an4/model.pt --manifest data/an4/test.jsonl [--requests 2000]

Starts ``asr serve`` as its own process (127.0.0.1, a free port, ``--max-upload-mb 1``) and sends
``--requests`` requests from 8 concurrent clients in this process, cycling through four kinds: a valid file
of the manifest (its reply must equal ``Transcriber.transcribe``'s text for that file), unreadable bytes
(must be 400), an upload over the size limit (must be 413) and a client that sends half its body and
disconnects. Prints the count of each outcome,
whether /health still answers, and the server process's resident memory before and after (after a warm-up
round of 200 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import asr
from asr.manifest import read_manifest
from asr.serve.runner import free_port

UPLOAD_MB = 1.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disconnect(url: str, body: bytes) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        head = (
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body) + 200}\r\n\r\n"
        )
        s.sendall(
            head.encode() + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        )
        s.sendall(body[: len(body) // 2])


async def soak(
    url: str, files: list[tuple[Path, bytes, str]], n: int, limit_bytes: int
) -> collections.Counter:
    outcomes: collections.Counter = collections.Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            kind = ("valid", "unreadable", "oversized", "disconnect")[i % 4]
            path, body, expected = files[(i // 4) % len(files)]
            if kind == "disconnect":
                await asyncio.to_thread(disconnect, url, body)
                outcomes["disconnect sent"] += 1
                continue
            payload = {
                "valid": body,
                "unreadable": b"RIFF" + body[100:400],
                "oversized": b"\0" * limit_bytes,
            }[kind]
            r = await http.post(f"{url}/v1/audio/transcriptions", files={"file": (path.name, payload)})
            want = {"valid": 200, "unreadable": 400, "oversized": 413}[kind]
            ok = r.status_code == want and (kind != "valid" or r.json()["text"] == expected)
            outcomes[f"{kind} {'ok' if ok else 'WRONG'}"] += 1

    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(8)))
    return outcomes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--requests", type=int, default=2000)
    args = p.parse_args()
    transcriber = asr.load_model(args.model)
    paths = [Path(u.audio_filepath) for u in read_manifest(args.manifest)]
    texts = [t.text for t in transcriber.transcribe(paths)]
    files = [(path, path.read_bytes(), text) for path, text in zip(paths, texts)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "asr.cli", "serve", "--model", args.model, "--port", str(port),
         "--max-upload-mb", str(UPLOAD_MB)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        limit = int(UPLOAD_MB * 2**20) + 1
        asyncio.run(soak(url, files, 200, limit))  # warm-up: allocator pools, thread pools, caches
        before = rss_mib(server.pid)
        outcomes = asyncio.run(soak(url, files, args.requests, limit))
        after = rss_mib(server.pid)
        health = httpx.get(f"{url}/health").json()
    finally:
        server.terminate()
        server.wait(timeout=60)
    for outcome, count in sorted(outcomes.items()):
        print(f"{outcome:20} {count}")
    print(f"health after: {health['status']}  batches {health['batches']}  requests {health['requests']}")
    print(f"resident memory: {before:.0f} MiB before, {after:.0f} MiB after: grew {after - before:+.1f} MiB")


if __name__ == "__main__":
    main()
