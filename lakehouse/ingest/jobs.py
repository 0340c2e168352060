"""Ingest jobs: what each upload is doing now, for clients that show progress.

A job is created when an ingest is admitted and records its phase
(``receiving`` while the body is spooled, ``converting`` while it is typed and
written as Parquet, ``committing`` while the file is stored and committed, then
``done`` or ``failed``), the bytes received, the rows converted so far, and at
the end the result or the error. A CSV is converted while it arrives (ADR 0009), so
its rows are counted during ``receiving`` too; ``converting`` is what is left once
the last byte came. The client may choose the job's id
(``?job=<uuid>``), so it can poll ``GET /v1/ingest/jobs/{id}`` from another
connection before its upload's response arrives.

Jobs live in memory only (a restart forgets them): every running one, plus the
last ``keep`` finished ones. The row count is updated from the converting worker
thread; each update is one attribute store, which the GIL keeps whole.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import suppress
from typing import Literal

import msgspec

from lakehouse.errors import BadRequest, Conflict, LakehouseError, NotFound
from lakehouse.ingest.interface import IngestPreview, IngestResult

Phase = Literal["receiving", "converting", "committing", "done", "failed"]
FINISHED: frozenset[Phase] = frozenset({"done", "failed"})
KEEP_FINISHED = 100


class InvalidJobId(BadRequest):
    code = "invalid_job_id"


class JobExists(Conflict):
    code = "job_exists"


class JobNotFound(NotFound):
    code = "job_not_found"


class JobError(msgspec.Struct, frozen=True):
    """Why a job failed: the code and message its ingest answered with."""

    code: str
    message: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IngestJob(msgspec.Struct, kw_only=True):
    """One ingest's progress, as ``GET /v1/ingest/jobs/{id}`` shows it."""

    id: str
    name: str | None
    phase: Phase = "receiving"
    bytes_received: int = 0
    bytes_expected: int | None = None
    """The upload's Content-Length, when it announced one (multipart framing included)."""
    rows_converted: int = 0
    """Rows read so far (the final count once done); a CSV's grow while it is received."""
    started_at: dt.datetime = msgspec.field(default_factory=_now)
    updated_at: dt.datetime = msgspec.field(default_factory=_now)
    result: IngestResult | None = None
    """The ingest's result (a dry run's preview is its own response, not kept here)."""
    error: JobError | None = None

    def enter(self, phase: Phase) -> None:
        self.phase = phase
        self.updated_at = _now()

    def converted(self, rows: int) -> None:
        """Called from the converting thread as row batches are read."""
        self.rows_converted = rows
        self.updated_at = _now()

    async def counting(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` passed through, counted into ``bytes_received`` as they arrive."""
        async for chunk in chunks:
            self.bytes_received += len(chunk)
            self.updated_at = _now()
            yield chunk

    def succeed(self, result: IngestResult | IngestPreview) -> None:
        """Done: the ingest's result, or a dry run's preview (only its row count is kept)."""
        if isinstance(result, IngestPreview):
            self.rows_converted = result.rows
        else:
            self.result = result
            self.rows_converted = result.stats.rows
        self.enter("done")

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, LakehouseError):
            self.error = JobError(code=exc.code, message=exc.message)
        else:  # a bug or a cancellation: its details are for the log, not the client
            self.error = JobError(code="internal_error", message="the ingest did not finish")
        self.enter("failed")


class IngestJobs:
    """The jobs of this process: every running one and the last ``keep`` finished."""

    def __init__(self, keep: int = KEEP_FINISHED) -> None:
        self.keep = keep
        self._jobs: OrderedDict[str, IngestJob] = OrderedDict()

    @staticmethod
    def check_id(job_id: str | None) -> str:
        """The client's ``?job=`` as a canonical uuid, or a new one; InvalidJobId (400)."""
        if job_id is None:
            return str(uuid.uuid4())
        try:
            return str(uuid.UUID(job_id))
        except ValueError:
            raise InvalidJobId(
                f"job must be a UUID, e.g. {uuid.uuid4()}", details={"job": job_id}
            ) from None

    def begin(self, job_id: str, name: str | None, bytes_expected: int | None) -> IngestJob:
        """A new running job; JobExists (409) when ``job_id`` is already known."""
        if job_id in self._jobs:
            raise JobExists(f"an ingest job {job_id} already exists: choose a new id")
        job = IngestJob(id=job_id, name=name, bytes_expected=bytes_expected)
        self._jobs[job_id] = job
        self._forget_oldest()
        return job

    def get(self, job_id: str) -> IngestJob:
        """The job; JobNotFound (404) for an id this process does not know (any more)."""
        with suppress(ValueError):  # not a UUID: no such job either
            job_id = str(uuid.UUID(job_id))  # as ?job= took it: any case, braces or not
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(
                f"no ingest job {job_id} (jobs are kept in memory, the last {self.keep})",
                details={"job": job_id},
            )
        return job

    def recent(self) -> list[IngestJob]:
        """Newest first."""
        return list(reversed(self._jobs.values()))

    def _forget_oldest(self) -> None:
        finished = [job.id for job in self._jobs.values() if job.phase in FINISHED]
        for job_id in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job_id]
