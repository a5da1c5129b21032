"""Dynamic batching: the requests for one task that arrive within a small window are answered
by one predictor call.

Each task has a queue and a worker. The worker takes the first waiting request, then collects
more until `max_batch` inputs are pending or `max_wait_ms` have passed, groups the requests
whose parameters are equal, and calls the predictor once per group in the task's own thread
(one thread per task: torch never runs the same predictor twice at once). When a group's call
raises InputError, its requests are run again one at a time, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from taskzoo.errors import InputError


@dataclass
class Job:
    """One request: its inputs (ready for the predictor), checked options, and whether one
    input was sent (the answer is then one output, not a list)."""

    items: list[Any]
    options: dict[str, Any]
    single: bool
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]

    def key(self) -> str:
        """Requests with equal keys share a predictor call."""
        return json.dumps(self.options, sort_keys=True, default=str)


class Batcher:
    """The queue and worker of one task's predictor.

    >>> batcher = Batcher(taskzoo.load("sentiment"), max_batch=32, max_wait_ms=5)  # doctest: +SKIP
    >>> await batcher.submit(["a fine film"], {}, single=True)                      # doctest: +SKIP
    [{'label': 'positive', 'score': 0.98}]
    """

    def __init__(self, predictor: Any, *, max_batch: int = 32, max_wait_ms: float = 5.0,
                 name: str = "task") -> None:
        self.predictor, self.name = predictor, name
        self.max_batch, self.max_wait = max(1, int(max_batch)), max(0.0, max_wait_ms) / 1000
        self.calls = 0  # predictor calls made (a group each)
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task | None = None
        self._queued = 0  # inputs queued and not yet collected
        self._full: asyncio.Event | None = None

    async def submit(self, items: list[Any], options: dict[str, Any], *, single: bool) -> Any:
        """The JSON answer to one request (`predictor.serve_response`), once its batch ran;
        raises what the predictor raised for it."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # the worker lives on the serving loop (a test client may bring a new one)
            self._loop, self._queue, self._queued = loop, asyncio.Queue(), 0
            self._full = asyncio.Event()  # max_batch inputs are queued: the window ends
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    1, thread_name_prefix=f"taskzoo-serve-{self.name}")
            self._worker = loop.create_task(self._work(), name=f"taskzoo-batcher-{self.name}")
        job = Job(items, options, single, loop.create_future())
        self._queue.put_nowait(job)
        self._queued += len(items)
        if self._queued >= self.max_batch:
            self._full.set()
        return await job.future

    async def close(self) -> None:
        """Stop the worker and the thread; waiting requests are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _collect(self) -> list[Job]:
        """The first waiting job and those that come within the window, up to max_batch
        inputs (a job larger than that goes alone). The window is one wait on an event that
        `submit` sets once max_batch inputs are queued: a timer per batch, not per request."""
        assert self._queue is not None
        jobs = [await self._queue.get()]
        self._queued -= len(jobs[0].items)
        if self.max_wait > 0 and len(jobs[0].items) + self._queued < self.max_batch:
            self._full.clear()
            try:
                await asyncio.wait_for(self._full.wait(), self.max_wait)
            except asyncio.TimeoutError:
                pass
        pending = len(jobs[0].items)
        while pending < self.max_batch and not self._queue.empty():
            job = self._queue.get_nowait()
            self._queued -= len(job.items)
            jobs.append(job)
            pending += len(job.items)
        return jobs

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            groups: dict[str, list[Job]] = {}
            for job in jobs:
                if not job.future.done():  # a client that left is not computed for
                    groups.setdefault(job.key(), []).append(job)
            for group in groups.values():
                try:
                    answers = await loop.run_in_executor(self._executor, self._answer, group)
                except Exception as exc:  # noqa: BLE001 - the executor itself failed
                    answers = [exc] * len(group)
                for job, answer in zip(group, answers):
                    if job.future.done():
                        continue
                    if isinstance(answer, BaseException):
                        job.future.set_exception(answer)
                    else:
                        job.future.set_result(answer)

    def _answer(self, group: list[Job]) -> list[Any]:
        """In the task's thread: one predictor call for the group; on InputError each job
        alone, so that the error names the bad request's own input."""
        if len(group) > 1:
            items = [x for job in group for x in job.items]
            try:
                self.calls += 1
                outputs = self.predictor(items, **group[0].options)
            except InputError:
                return [self._one(job) for job in group]
            except Exception as exc:  # noqa: BLE001 - every job learns it
                return [exc] * len(group)
            answers, at = [], 0
            for job in group:
                part = outputs[at:at + len(job.items)]
                at += len(job.items)
                answers.append(self._respond(job, part))
            return answers
        return [self._one(group[0])]

    def _one(self, job: Job) -> Any:
        try:
            self.calls += 1
            return self._respond(job, self.predictor(job.items, **job.options))
        except Exception as exc:  # noqa: BLE001 - handed to the request's handler
            return exc

    def _respond(self, job: Job, outputs: list[Any]) -> Any:
        try:
            return self.predictor.serve_response(list(outputs), job.items, job.single)
        except Exception as exc:  # noqa: BLE001
            return exc
