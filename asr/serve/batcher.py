"""Dynamic batching: concurrent requests gathered into batches on one model instance.

Requests wait in a bounded queue. The worker takes the first waiting request, then gathers more for at most
``max_wait_s`` or until ``batch_seconds`` of audio are waiting, and runs each group of requests that share a
decoder setting through :meth:`asr.inference.Transcriber.transcribe` in one call (which sorts them by length
and pads them into batches). The model runs in one worker thread, so the event loop keeps accepting
requests while a batch is decoded. A full queue refuses new requests at once instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from asr.decoding import DecoderConfig
from asr.inference import Transcriber, Transcript


class QueueFull(Exception):
    """The server already holds as many requests as it queues."""


@dataclass
class Job:
    path: Path  # a server-owned temporary file, never a client's path
    seconds: float
    decoder: DecoderConfig
    timestamps: bool
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    """What the worker has done, for /health and the benchmarks."""

    batches: int = 0
    requests: int = 0
    largest: int = 0


class Batcher:
    """Gathers jobs into batches and runs them on ``transcriber`` in one worker thread."""

    def __init__(
        self,
        transcriber: Transcriber,
        max_queue: int = 64,
        max_wait_s: float = 0.05,
        batch_seconds: float = 200.0,
    ) -> None:
        if max_queue < 1 or max_wait_s < 0 or batch_seconds <= 0:
            raise ValueError("need max_queue >= 1, max_wait_s >= 0 and batch_seconds > 0")
        self.transcriber = transcriber
        self.max_wait_s, self.batch_seconds = max_wait_s, batch_seconds
        self.queue: asyncio.Queue[Job] = asyncio.Queue(max_queue)
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-model")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        return self.queue.qsize()

    async def transcribe(
        self, path: Path, seconds: float, decoder: DecoderConfig, timestamps: bool
    ) -> Transcript:
        """The transcript of one file, decoded in a batch with whatever else is waiting."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Job(path, seconds, decoder, timestamps, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        return await future

    async def _gather(self) -> list[Job]:
        jobs = [await self.queue.get()]
        seconds = jobs[0].seconds
        deadline = time.monotonic() + self.max_wait_s
        while seconds < self.batch_seconds:
            left = deadline - time.monotonic()
            try:
                job = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            jobs.append(job)
            seconds += job.seconds
        return [j for j in jobs if not j.future.done()]  # a client that went away cancelled its future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            groups: dict[tuple[DecoderConfig, bool], list[Job]] = {}
            for job in jobs:
                groups.setdefault((job.decoder, job.timestamps), []).append(job)
            for (decoder, timestamps), group in groups.items():
                try:
                    results = await loop.run_in_executor(
                        self._executor,
                        lambda g=group, d=decoder, t=timestamps: self.transcriber.transcribe(
                            [j.path for j in g], d, timestamps=t
                        ),
                    )
                except Exception as e:  # a bug or a decoder failure: every waiting client hears of it
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                self.stats.batches += 1
                self.stats.requests += len(group)
                self.stats.largest = max(self.stats.largest, len(group))
                for job, result in zip(group, results):
                    if not job.future.done():
                        job.future.set_result(result)
