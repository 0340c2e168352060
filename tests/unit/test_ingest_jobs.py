"""The ingest jobs kept in memory are bounded: every running job, plus the last
``keep`` finished ones."""

from __future__ import annotations

import uuid

from lakehouse.ingest import EmptyCSV, IngestJobs


def test_only_the_last_finished_jobs_are_kept_and_running_ones_never_go() -> None:
    jobs = IngestJobs(keep=3)
    running = jobs.begin(str(uuid.uuid4()), "long", None)
    finished = []
    for n in range(6):
        job = jobs.begin(str(uuid.uuid4()), f"d{n}", None)
        job.fail(EmptyCSV("the upload is empty"))
        finished.append(job.id)
    jobs.begin(str(uuid.uuid4()), "next", None)
    kept = [job.id for job in jobs.recent()]
    assert running.id in kept
    assert [i for i in kept if i in finished] == finished[:-4:-1]  # newest first
    assert len(kept) == 3 + 2  # the last three finished, and the two running
    assert jobs.get(finished[-1]).error is not None
