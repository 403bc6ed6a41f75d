"""Long operations run as jobs: the page (or an API client) follows their progress live.

A job runs one engine call in the server's event loop, collects what the engine ``say`` s, and
keeps the outcome or the error.  Only the session that started a job can see it.  Followers get
the lines as they come (server-sent events), then the end.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.errors import SolutionsError
from metalk8s_solutions.web.errors import INTERNAL, ErrorInfo, classify

Say = Callable[[str], None]
Work = Callable[[Say], Awaitable[dict[str, Any]]]
KEEP = 3600.0
MAX_JOBS = 200


@dataclass
class Job:
    id: str
    owner: str
    title: str
    back: str  # the page to return to when done
    started: float = field(default_factory=time.time)
    lines: list[str] = field(default_factory=list)
    done: bool = False
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    finished: float | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def state(self) -> str:
        if not self.done:
            return "running"
        return "failed" if self.error else "succeeded"

    def say(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "state": self.state,
            "started": self.started,
            "finished": self.finished,
            "lines": list(self.lines),
            "result": self.result,
            "error": self.error.to_json()["error"] if self.error else None,
        }

    async def follow(self, start: int = 0) -> AsyncIterator[tuple[str, str]]:
        """``("line", text)`` for each line from ``start``, then ``("done", state)``."""
        sent = start
        while True:
            self._changed.clear()
            while sent < len(self.lines):
                yield "line", self.lines[sent]
                sent += 1
            if self.done:
                yield "done", self.state
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=15)
            except TimeoutError:
                yield "ping", ""


class Jobs:
    """The jobs of this server process."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, owner: str, title: str, back: str, work: Work) -> Job:
        self._prune()
        job = Job(secrets.token_urlsafe(12), owner, title, back)
        self._jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, work: Work) -> None:
        try:
            job.result = await work(job.say)
        except SolutionsError as err:
            job.error = classify(err)
        except Exception:
            import logging  # noqa: PLC0415

            logging.getLogger(__name__).exception("job %s (%s) failed", job.id, job.title)
            job.error = INTERNAL
        finally:
            job.done = True
            job.finished = time.time()
            job._changed.set()

    def get(self, job_id: str, owner: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            return None
        return job

    def _prune(self) -> None:
        now = time.time()
        old = [j.id for j in self._jobs.values() if j.done and now - (j.finished or now) > KEEP]
        for job_id in old:
            self._jobs.pop(job_id, None)
        while len(self._jobs) >= MAX_JOBS:
            oldest = min(self._jobs.values(), key=lambda j: j.started)
            self._jobs.pop(oldest.id, None)
