"""The job engine: jobs persisted in the catalog, run by a pool of worker threads.

Invariants:
- Every job is a `Job` row first; its state moves queued -> running -> one of completed, completed with warnings,
  failed, cancelled (or queued -> cancelled), and nothing else writes those states.
- A group runs one job at a time (syncs, points, checks, prunes and restores all read or write the group's replica;
  its tape jobs apart, below), in the order they were asked for, restores first. Jobs of different groups run in
  parallel, up to `limits.workers` at once, of which at most `limits.syncs` syncs and points; a queued restore goes
  before any queued backup.
- A group's tape jobs exclude each other but not its other jobs (`_hold`): a tape backup reads a recovery point
  (pinned against prune while the job is queued or running, catalog/tape_sets.py `pinned_snapshots`) or tape, never
  the live replica, so one waiting for a cartridge or a drive holds none of the group's syncs.
- Tape jobs (TAPE_KINDS) run on their own threads, never on the workers: one per enabled drive at most
  (`tape_slots()`, at least one so a job finds out and says why no drive serves it), so jobs waiting for a drive or a
  cartridge never hold every worker, and more tape jobs than drives wait `queued`, not inside a drive lease. A
  tape job that waits for a person at the mail slots holds no slot meanwhile: `vault-import` never uses a drive
  (NO_DRIVE_KINDS: its own thread, no slot), and a job that needs none from some point on (`vault-export`, once its
  catalog backup is written) gives its slot back (`JobContext.release_drive`). The rotation forecast
  (`vault-forecast`) uses no drive either but runs for minutes: it too gets a thread of its own and no slot, so it
  never holds a worker that the scheduled syncs need.
- A scheduled job whose failure is transient (`Outcome.transient`: a source that cannot be reached, a drive
  offline) is retried up to `limits.retries` times (an operator's request fails at once: the operator is there to
  see it and decide), after `limits.retry_delay` seconds doubled each time; it stays `queued`
  meanwhile (its reason says when it runs again), and only the last failure is a failure (with its alert).
- Every step of a job is a `JobEvent` row (queued, started, waited, retried, its end); `forget_old` deletes
  finished jobs and their events once older than `limits.keep_history`.
- A sync (or point) asked for while one of the same kind is still *queued* for that group is coalesced into it: the
  caller gets the queued job's id. Asked for while one is *running*, it is queued once, to run right after, so
  changes made during the running sync are caught.
- Progress reaches the catalog at most every PROGRESS_INTERVAL seconds (plus once at the end), so a fast scan does not
  turn into a write storm.
- Cancel sets the job's Event; the job body passes it to the protect engine, which stops at the next safe point.
- Whoever waits for a job (`wait`, `wait_for_end`: the API's long poll) is woken by the job's end being recorded,
  not by polling: the watchers of a job are called right after the commit that records its end.
- On start, jobs a killed daemon left "running" become failed ("daemon stopped while running; rerun it") and jobs
  left "queued" are queued again. A job the daemon's own stop (SIGTERM) interrupts is not "cancelled by request":
  it ends failed ("interrupted because the daemon stopped", with an alert) and, unless it is a restore, a new job of
  the same kind is queued for the next start (whose success resolves the alert).
- An end the catalog cannot record (disk full: Unavailable) is kept in memory: `view` shows the job ended, cancel
  says so, and `flush_unrecorded` (the daemon's watchdog) records it once the catalog is writable again.
- A worker never dies: anything a job body or its bookkeeping raises ends that job "failed" with the reason, and
  the worker takes the next job. Text a job stores (progress message, reason, warnings, result) is made storable
  first: a file name that is not UTF-8 (surrogate escapes) is written with its bytes as `\xff`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import update
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import JOB_FINISHED, Job, JobEvent, utcnow
from appliance.errors import Conflict, TapelineError, Unavailable, as_error
from appliance.ops import alerts
from appliance.ops.job_records import (forget_jobs, get_job, list_jobs, record_event, seconds_text, storable,
                                       storable_value)

__all__ = ["JobContext", "JobEngine", "Limits", "Outcome", "get_job", "list_jobs"]  # the queries, for older importers

log = logging.getLogger("tapeline.jobs")

PROGRESS_INTERVAL = 0.3
COALESCED_KINDS = ("sync", "point", "check", "prune")
STALE_REASON = "daemon stopped while running; rerun it"
# Tests only: with TAPELINE_TEST_HOLD=DIR, a job reaching a step named by a file DIR/STEP ("running": before its body;
# "point": a sync's point was just recorded) waits on the FIFO DIR/job-ID-STEP until a writer opens and closes it, so
# a test acts on a job known to be at that step (a cancel) instead of racing it.
HOLD_ENV = "TAPELINE_TEST_HOLD"
STOPPED_REASON = "interrupted because the daemon stopped"
RESTORE_KINDS = ("restore", "tape-restore")
SYNC_KINDS = ("sync", "point")
TAPE_KINDS = ("tape-backup", "tape-restore", "media-verify", "media-rebuild", "inventory", "label", "erase", "clean",
              "load", "unload", "vault-export", "vault-import")
NO_DRIVE_KINDS = ("vault-import", "vault-forecast")  # jobs on their own thread that never use a drive: no slot
OWN_THREAD_KINDS = TAPE_KINDS + ("vault-forecast",)  # the forecast runs for minutes: never on a worker the syncs need
RELEASED = "tape job done with its drive"  # what a job that gave its slot back counts as (no kind: counted nowhere)
SLOTS_RECHECK = 5.0  # seconds: how soon a tape job held back for want of drives looks again (a drive enabled)


@dataclass(frozen=True)
class Limits:
    """The engine's limits (`[jobs]` in the configuration)."""

    workers: int = 2
    syncs: int = 2
    retries: int = 3
    retry_delay: float = 60.0
    keep_history: int = 90 * 86400


@dataclass(frozen=True)
class Outcome:
    """What a job body returns. `state` is one of completed, completed with warnings, failed, cancelled."""

    state: str
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    result: dict = field(default_factory=dict)
    fix: str | None = None
    transient: bool = False  # the cause may clear by itself (source unreachable, drive offline): worth a retry


class JobContext:
    """What a job body gets: its row's ids and parameters, a throttled progress callback and a cancel Event."""

    def __init__(self, engine: "JobEngine", job: Job):
        self.catalog = engine.catalog
        self._engine = engine
        self.job_id: int = job.id
        self.kind: str = job.kind
        self.group_id: int | None = job.group_id
        self.group_name: str | None = job.group_name
        self.params: dict = dict(job.params)
        self.cancel = threading.Event()
        self.requested = False  # cancel asked for by an operator (not the daemon's stop)
        self._last_write = 0.0
        self._latest: tuple[int, int | None, str] | None = None

    def progress(self, done: int, total: int | None, message: str) -> None:
        self._latest = (int(done), None if total is None else int(total), storable(message)[:500])
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_INTERVAL:
            self._last_write = now
            self.flush_progress()

    def release_drive(self) -> None:
        """This tape job uses no drive from here on (it waits for the mail slots to be emptied): its drive slot goes
        to the next tape job while it runs on, on its own thread."""
        self._engine.release_drive(self.job_id)

    def event(self, event: str, message: str = "") -> None:
        """Add a step to the job's history (a body says it "waited" for a drive or a cartridge)."""
        record_event(self.catalog, self.job_id, event, message)

    def hold(self, step: str) -> None:
        hold = os.environ.get(HOLD_ENV)
        if hold and os.path.exists(os.path.join(hold, step)):
            fifo = os.path.join(hold, f"job-{self.job_id}-{step}")
            os.mkfifo(fifo)
            with open(fifo, "rb") as f:  # blocks until the test opens it for writing
                f.read()

    def flush_progress(self) -> None:
        if self._latest is None:
            return
        done, total, message = self._latest
        with self.catalog.session() as s:
            s.execute(update(Job).where(Job.id == self.job_id)
                      .values(progress_done=done, progress_total=total, progress_message=message))


Body = Callable[[JobContext], Outcome]


class JobEngine:
    def __init__(self, catalog: Catalog, bodies: dict[str, Body], workers: int | None = None,
                 limits: Limits | None = None, tape_slots: Callable[[], int] = lambda: 1):
        self.catalog = catalog
        self.bodies = bodies
        limits = limits or Limits()
        self.limits = limits if workers is None else Limits(**{**limits.__dict__, "workers": workers})
        self.workers = self.limits.workers
        self.tape_slots = tape_slots
        self._cond = threading.Condition()
        self._pending: list[int] = []             # job ids, in submission order
        self._pending_info: dict[int, tuple[str, int | None]] = {}  # id -> (kind, group_id)
        self._not_before: dict[int, float] = {}   # id -> monotonic time its retry may start
        self._attempts: dict[int, int] = {}       # id -> runs that failed transiently so far
        self._taken: dict[int, str] = {}          # id -> kind, from take to end (what the limits count)
        self._busy_groups: set[tuple[bool, int]] = set()  # (tape, group id) held by a running job
        self._running: dict[int, JobContext] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._recovered = False
        self._watch_lock = threading.Lock()
        self._watchers: dict[int, list[Callable[[], None]]] = {}  # job id -> called once its end is recorded
        self._unrecorded: dict[int, tuple[Outcome, object]] = {}  # job id -> (outcome, end time) not yet in the catalog

    # -- life cycle ---------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Fail jobs a killed daemon left running; queue again the ones it left queued. Once per engine."""
        if self._recovered:
            return
        self._recovered = True
        with self.catalog.session() as s:
            stale = s.exec(select(Job).where(Job.state == "running")).all()
            for job in stale:
                job.state, job.reason, job.finished = "failed", STALE_REASON, utcnow()
                s.add(job)
            queued = s.exec(select(Job).where(Job.state == "queued").order_by(Job.id)).all()
        for job in stale:
            log.warning("job %s (%s %s) was running when the daemon stopped: marked failed", job.id, job.kind,
                        job.group_name)
            alerts.raise_alert(self.catalog, "warning", f"{job.kind} of {_subject(job)} (job {job.id}) was "
                               "interrupted because the daemon stopped", _rerun_fix(job), job.group_name, job.id,
                               about=alerts.job_object(job))
        for job in stale:
            record_event(self.catalog, job.id, "failed", STALE_REASON)
        for job in queued:
            if job.id not in self._pending_info:
                record_event(self.catalog, job.id, "queued", "queued again: the daemon started")
        with self._cond:
            for job in queued:
                if job.id in self._pending_info:  # submitted to this engine before it started
                    continue
                self._pending.append(job.id)
                self._pending_info[job.id] = (job.kind, job.group_id)
            self._cond.notify_all()

    def start(self) -> None:
        self.recover()
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"tapeline-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._tape_dispatcher, name="tapeline-tape-jobs", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs, cancel the running ones and wait for them to end (queued ones stay queued)."""
        with self._cond:
            self._stopping = True
            for ctx in self._running.values():
                ctx.cancel.set()
            self._cond.notify_all()
            running = sorted(self._running)
        if running:
            log.info("asked the running jobs to end: %s", ", ".join(map(str, running)))
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    # -- requests -----------------------------------------------------------------------------------------------

    def submit(self, kind: str, group_id: int | None, group_name: str | None, params: dict | None = None,
               requested_by: str = "operator") -> tuple[int, bool]:
        """Queue a job; returns (job id, coalesced) where coalesced means an already queued job answers it."""
        if kind not in self.bodies:
            raise TapelineError(f"unknown job kind {kind!r}", f"use one of {', '.join(self.bodies)}")
        with self._cond:
            if self._stopping:
                raise Conflict("the daemon is stopping", "start it again and repeat the request")
            if kind in COALESCED_KINDS and not params:
                for jid in self._pending:
                    if self._pending_info[jid] == (kind, group_id):
                        return jid, True
            with self.catalog.session() as s:
                job = Job(kind=kind, group_id=group_id, group_name=group_name, params=params or {},
                          requested_by=requested_by)
                s.add(job)
                s.flush()
                job_id = job.id
                s.add(JobEvent(job_id=job_id, event="queued", message=f"asked for by the {requested_by}"))
            self._pending.append(job_id)
            self._pending_info[job_id] = (kind, group_id)
            self._cond.notify_all()
        log.info("job %s queued: %s %s (%s)", job_id, kind, group_name or "", requested_by)
        return job_id, False

    def cancel(self, job_id: int) -> Job:
        with self._cond:
            if job_id in self._pending_info:
                self._pending.remove(job_id)
                del self._pending_info[job_id]
                self._not_before.pop(job_id, None)
                self._attempts.pop(job_id, None)
                self._finish(job_id, Outcome("cancelled", "cancelled before it started"))
            elif job_id in self._running:
                self._running[job_id].requested = True
                self._running[job_id].cancel.set()
        job = self.view(get_job(self.catalog, job_id))
        if job.state in JOB_FINISHED and job.state != "cancelled" and job_id not in self._running:
            raise Conflict(f"job {job_id} already ended ({job.state})", "nothing to cancel; see `tapeline jobs`")
        return job

    def _watch(self, job_id: int, wake: Callable[[], None]) -> Callable[[], None]:
        """Have `wake()` called (on the finishing thread) once the job's end is recorded; returns the undo."""
        with self._watch_lock:
            self._watchers.setdefault(job_id, []).append(wake)

        def undo() -> None:
            with self._watch_lock:
                left = [w for w in self._watchers.get(job_id, ()) if w is not wake]
                if left:
                    self._watchers[job_id] = left
                else:
                    self._watchers.pop(job_id, None)
        return undo

    def _ended(self, job_id: int) -> None:
        with self._watch_lock:
            watchers = self._watchers.pop(job_id, [])
        for wake in watchers:
            wake()

    def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """Block until the job ends (for tests and in-process callers); TimeoutError after `timeout` seconds."""
        ended = threading.Event()
        undo = self._watch(job_id, ended.set)  # before the first read: an end recorded meanwhile still wakes us
        try:
            job = self.view(get_job(self.catalog, job_id))
            if job.state not in JOB_FINISHED and ended.wait(timeout):
                job = self.view(get_job(self.catalog, job_id))
        finally:
            undo()
        if job.state not in JOB_FINISHED:
            raise TimeoutError(f"job {job_id} still {job.state} after {timeout}s")
        return job

    async def wait_for_end(self, job_id: int, timeout: float) -> Job:
        """The job once it ended, or as it is after `timeout` seconds (the API's long poll: no thread is held
        while it waits)."""
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        undo = self._watch(job_id, lambda: loop.call_soon_threadsafe(ended.set))
        try:
            job = self.view(await asyncio.to_thread(get_job, self.catalog, job_id))
            if job.state in JOB_FINISHED:
                return job
            try:
                await asyncio.wait_for(ended.wait(), timeout)
            except TimeoutError:
                pass
        finally:
            undo()
        return self.view(await asyncio.to_thread(get_job, self.catalog, job_id))

    def running_ids(self) -> list[int]:
        with self._cond:
            return list(self._running)

    def view(self, job: Job) -> Job:
        """The job as it is: with its end when that end is not yet in the catalog."""
        with self._cond:
            kept = self._unrecorded.get(job.id)
        if kept is None:
            return job
        outcome, finished = kept
        return job.model_copy(update={"state": outcome.state, "finished": finished, "reason": outcome.reason,
                                      "warnings": list(outcome.warnings), "result": outcome.result})

    def flush_unrecorded(self) -> int:
        """Record the ends the catalog could not take before; returns how many are still waiting."""
        with self._cond:
            waiting = list(self._unrecorded.items())
        for job_id, (outcome, finished) in waiting:
            self._finish(job_id, outcome, finished)
        with self._cond:
            return len(self._unrecorded)

    # -- workers ------------------------------------------------------------------------------------------------

    def _take(self, tape: bool = False) -> int | None:
        """The next job this lane may run (the workers', or with `tape` the tape jobs'), waiting until there is one;
        None once the engine stops."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                jid, wait = self._choose(tape)
                if jid is not None:
                    kind, group_id = self._pending_info.pop(jid)
                    self._pending.remove(jid)
                    self._not_before.pop(jid, None)
                    self._taken[jid] = kind
                    if group_id is not None:
                        self._busy_groups.add(_hold(kind, group_id))
                    return jid
                self._cond.wait(wait)

    def _choose(self, tape: bool) -> tuple[int | None, float | None]:
        """(the job to take, else how long to wait at most before looking again: None until notified)."""
        now = time.monotonic()
        wait: float | None = None
        syncs = sum(k in SYNC_KINDS for k in self._taken.values())
        tapes = sum(k in TAPE_KINDS and k not in NO_DRIVE_KINDS for k in self._taken.values())
        slots = None
        best, best_rank = None, None
        for jid in self._pending:
            kind, group_id = self._pending_info[jid]
            if (kind in OWN_THREAD_KINDS) != tape or (group_id is not None and _hold(kind, group_id) in self._busy_groups):
                continue
            due = self._not_before.get(jid, 0.0)
            if due > now:
                wait = min(wait or due - now, due - now)
                continue
            if kind in SYNC_KINDS and syncs >= self.limits.syncs:
                continue
            if tape and kind not in NO_DRIVE_KINDS:
                slots = self._slots() if slots is None else slots
                if tapes >= slots:
                    wait = min(wait or SLOTS_RECHECK, SLOTS_RECHECK)
                    continue
            rank = 0 if kind in RESTORE_KINDS else 1
            if best_rank is None or rank < best_rank:
                best, best_rank = jid, rank
        return best, wait

    def release_drive(self, job_id: int) -> None:
        with self._cond:
            if self._taken.get(job_id) in TAPE_KINDS:
                self._taken[job_id] = RELEASED
                self._cond.notify_all()

    def _slots(self) -> int:
        try:
            return max(1, int(self.tape_slots()))
        except Exception:  # the count comes from the catalog: one tape job still finds out what is wrong
            log.exception("could not count the tape drives")
            return 1

    def _worker(self) -> None:
        while (job_id := self._take()) is not None:
            self._run_logged(job_id)

    def _tape_dispatcher(self) -> None:
        """Start each tape job (and the forecast: OWN_THREAD_KINDS) on a thread of its own once a drive slot is free, if
        it needs one (see the module's invariants)."""
        while (job_id := self._take(tape=True)) is not None:
            t = threading.Thread(target=self._run_logged, args=(job_id,), name=f"tapeline-tape-job-{job_id}",
                                 daemon=True)
            with self._cond:
                self._threads.append(t)
            t.start()

    def _run_logged(self, job_id: int) -> None:
        try:
            self._run(job_id)
        except Exception:  # bookkeeping failed even as a failure: the job is lost, the worker is not
            log.exception("job %s: could not record its end", job_id)
        finally:
            if threading.current_thread().name.startswith("tapeline-tape-job-"):
                with self._cond:
                    self._threads = [t for t in self._threads if t is not threading.current_thread()]

    def _run(self, job_id: int) -> None:
        held = self._held_by(job_id)
        ctx = None
        try:
            with self.catalog.session() as s:
                job = s.get(Job, job_id)
                job.state, job.started = "running", utcnow()
                s.add(job)
            ctx = JobContext(self, job)
            with self._cond:
                self._running[job_id] = ctx
                if self._stopping:  # taken just before the stop: it must not run on unstoppable
                    ctx.cancel.set()
            log.info("job %s started: %s %s", job_id, job.kind, job.group_name or "")
            attempt = self._attempts.get(job_id, 0)
            record_event(self.catalog, job_id, "started", f"attempt {attempt + 1}" if attempt else "")
            ctx.hold("running")
            outcome = self._body(job, ctx)
            try:
                ctx.flush_progress()
            except Unavailable:  # the catalog said why (full disk); the outcome is kept below
                pass
            except Exception:  # the last progress is a nicety; the outcome must still be recorded
                log.exception("job %s: could not record its last progress", job_id)
            if outcome.reason == STOPPED_REASON and job.kind != "restore":
                outcome = self._queue_again(job, outcome)
            if self._retry(job, ctx, outcome):
                return
            self._attempts.pop(job_id, None)
            self._finish(job_id, outcome)
        except Exception as exc:
            if isinstance(exc, Unavailable):  # the catalog said why (full disk): no traceback to read
                log.error("job %s: %s", job_id, exc)
            else:
                log.exception("job %s: bookkeeping failed", job_id)
            self._finish(job_id, _crash(exc))
        finally:
            with self._cond:
                self._running.pop(job_id, None)
                self._taken.pop(job_id, None)
                self._busy_groups.discard(held)
                self._cond.notify_all()

    def _held_by(self, job_id: int) -> tuple[bool, int] | None:
        with self.catalog.reader() as s:
            job = s.get(Job, job_id)
            return _hold(job.kind, job.group_id) if job is not None and job.group_id is not None else None

    def _body(self, job: Job, ctx: JobContext) -> Outcome:
        try:
            outcome = self.bodies[job.kind](ctx)
        except TapelineError as exc:
            outcome = Outcome("failed", exc.message, fix=exc.fix, transient=getattr(exc, "transient", False))
        except Exception as exc:  # a bug or an unexpected OS error: the job fails, the daemon lives on
            log.exception("job %s crashed", job.id)
            outcome = _crash(exc)
        if ctx.cancel.is_set() and outcome.state in ("failed", "cancelled"):
            if ctx.requested:
                outcome = Outcome("cancelled", "cancelled by request", outcome.warnings, outcome.result)
            else:
                outcome = Outcome("failed", STOPPED_REASON, outcome.warnings, outcome.result,
                                  fix=f"run it again (see `tapeline job {job.id}`)")
        return outcome

    def _retry(self, job: Job, ctx: JobContext, outcome: Outcome) -> bool:
        """Queue a transiently failed job again after its backoff; False when it has no retry left (it fails)."""
        attempt = self._attempts.get(job.id, 0) + 1
        if (outcome.state != "failed" or not outcome.transient or ctx.cancel.is_set()
                or job.requested_by != "schedule" or attempt > self.limits.retries):
            return False
        delay = self.limits.retry_delay * 2 ** (attempt - 1)
        note = (f"retry {attempt} of {self.limits.retries} in {seconds_text(delay)}: {storable(outcome.reason or '')}")
        log.warning("job %s (%s %s) failed transiently, %s", job.id, job.kind, job.group_name or "", note)
        with self._cond:  # queued in the catalog and here at once: a cancel sees it waiting, never in between
            with self.catalog.session() as s:
                row = s.get(Job, job.id)
                row.state, row.started, row.reason = "queued", None, note
                s.add(row)
                s.add(JobEvent(job_id=job.id, event="retried", message=note))
            self._attempts[job.id] = attempt
            self._pending.append(job.id)
            self._pending_info[job.id] = (job.kind, job.group_id)
            self._not_before[job.id] = time.monotonic() + delay
            self._cond.notify_all()
        return True

    def forget_old(self, now=None) -> int:
        """Delete finished jobs (and their events) that ended more than `keep_history` ago; returns how many."""
        return forget_jobs(self.catalog, self.limits.keep_history, now)

    def _queue_again(self, job: Job, outcome: Outcome) -> Outcome:
        """A job the daemon's stop interrupted runs again at the next start (queued jobs are kept)."""
        try:
            with self.catalog.session() as s:
                again = Job(kind=job.kind, group_id=job.group_id, group_name=job.group_name, params=job.params,
                            requested_by=job.requested_by)
                s.add(again)
                s.flush()
                again_id = again.id
        except Exception:
            log.exception("job %s: could not queue it again", job.id)
            return outcome
        return Outcome(outcome.state, outcome.reason, outcome.warnings, {**outcome.result, "rerun_job": again_id},
                       fix=f"it runs again when the daemon starts (job {again_id})")

    def _finish(self, job_id: int, outcome: Outcome, finished=None) -> None:
        finished = finished or utcnow()
        try:
            self._record_end(job_id, outcome, finished)
        except Unavailable as exc:
            with self._cond:
                self._unrecorded[job_id] = (outcome, finished)
                self._cond.notify_all()
            log.error("job %s %s, but the catalog cannot record it yet (%s); it is kept until it can",
                      job_id, outcome.state, exc.message)
            self._ended(job_id)  # waiters see the end in `view`
            return
        with self._cond:
            self._unrecorded.pop(job_id, None)
            self._cond.notify_all()

    def _record_end(self, job_id: int, outcome: Outcome, finished) -> None:
        reason = None if outcome.reason is None else storable(outcome.reason)
        with self.catalog.reader() as s:
            job = s.get(Job, job_id)
        # The alert goes in before the job is seen to end, so whoever waited for the job finds it at once.
        if outcome.state == "failed" and job.kind != "restore":  # the operator who asked for a restore sees it
            alerts.raise_alert(self.catalog, "error",
                               f"{job.kind} of {_subject(job)} failed (job {job_id}): {reason}",
                               storable(outcome.fix or _rerun_fix(job)), job.group_name, job_id,
                               same_as=f"{job.kind} of {_subject(job)} failed", about=alerts.job_object(job))
        with self.catalog.session() as s:
            job = s.get(Job, job_id)
            job.state, job.finished = outcome.state, finished
            job.reason = reason
            job.warnings = [storable(w) for w in outcome.warnings]
            job.result = storable_value({**outcome.result, **({"fix": outcome.fix} if outcome.fix else {})})
            s.add(job)
            s.add(JobEvent(job_id=job_id, time=finished, event=outcome.state, message=reason or ""))
        self._ended(job_id)
        log.log(logging.WARNING if outcome.state in ("failed", "completed with warnings") else logging.INFO,
                "job %s %s%s", job_id, outcome.state, f": {outcome.reason}" if outcome.reason else "")


def _hold(kind: str, group_id: int) -> tuple[bool, int]:
    """What a running job holds of its group: its tape jobs' share or its disk jobs' share."""
    return kind in TAPE_KINDS, group_id


def _subject(job: Job) -> str:
    """What a job is about, in messages: its group, or for a job of no group (media jobs) its own name for what it
    works on ("library vtl")."""
    return f"group '{job.group_name}'" if job.group_id is not None else (job.group_name or "the appliance")


def _crash(exc: Exception) -> Outcome:
    err = as_error(exc)  # the first line only: the rest (SQL, parameters) is in the daemon's log
    return Outcome("failed", err.message, fix=err.fix)


def _rerun_fix(job: Job) -> str:
    if job.kind in ("sync", "point", "check", "prune") and job.group_name:
        return f"rerun it with `tapeline {job.kind} {job.group_name}` and see `tapeline job {job.id}`"
    return f"see `tapeline job {job.id}` and start it again"
