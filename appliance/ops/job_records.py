"""What the catalog keeps of jobs, apart from the engine: their rows read back, their history (`JobEvent`), the
sweep of old ones, and text made storable.

Invariants: a history step that the catalog cannot take (disk full) is logged, never raised: losing a step must not
lose the job. Text stored for a job is valid UTF-8 (a file name that is not is written with its bytes as `\\xff`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import JOB_FINISHED, Job, JobEvent, utcnow
from appliance.errors import NotFound, Unavailable

log = logging.getLogger("tapeline.jobs")


def storable(text) -> str:
    """`text` as valid UTF-8 for the catalog and JSON: bytes that are not UTF-8 (raw or as surrogate escapes) become
    `\\xff`-style escapes, so a name stays readable and never breaks the write."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable_value(value):
    """A job result with every string (keys too) storable."""
    if isinstance(value, (str, bytes)):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k): storable_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_value(v) for v in value]
    return value


def record_event(catalog: Catalog, job_id: int, event: str, message: str = "") -> None:
    """One step of a job's history. A catalog that cannot take it (disk full) loses the step, not the job: the
    job's own row still records its end (kept in memory until it can)."""
    try:
        with catalog.session() as s:
            s.add(JobEvent(job_id=job_id, event=event, message=storable(message)[:1000]))
    except Unavailable as exc:
        log.error("job %s: its %s event was not recorded (%s): %s", job_id, event, exc.message, message)


def job_events(catalog: Catalog, job_id: int) -> list[JobEvent]:
    with catalog.reader() as s:
        return list(s.exec(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all())


def seconds_text(seconds: float) -> str:
    """A delay as people read it: "0.5 s", "45 s", "2 min", "2 min 30 s"."""
    if seconds < 60:
        return f"{round(seconds, 1):g} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def forget_jobs(catalog: Catalog, keep_seconds: int, now=None) -> int:
    """Delete finished jobs (and their events) that ended more than `keep_history` ago; returns how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=keep_seconds)
    with catalog.session() as s:
        old = list(s.exec(select(Job.id).where(Job.state.in_(JOB_FINISHED), Job.finished < cutoff)).all())
        for chunk in range(0, len(old), 500):
            ids = old[chunk:chunk + 500]
            s.execute(delete(JobEvent).where(JobEvent.job_id.in_(ids)))
            s.execute(delete(Job).where(Job.id.in_(ids)))
    if old:
        log.info("forgot %d job(s) that ended before %s (jobs.keep_history)", len(old), cutoff.isoformat())
    return len(old)


def get_job(catalog: Catalog, job_id: int) -> Job:
    with catalog.reader() as s:
        job = s.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", "list jobs with `tapeline jobs`")
    return job


def list_jobs(catalog: Catalog, limit: int = 50, group_id: int | None = None, state: str | None = None) -> list[Job]:
    with catalog.reader() as s:
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if group_id is not None:
            q = q.where(Job.group_id == group_id)
        if state is not None:
            q = q.where(Job.state == state)
        return list(s.exec(q).all())
