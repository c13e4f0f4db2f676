"""Prometheus metrics (`[metrics] listen`, docs/reports.md "Metrics"), served by prometheus_client's own HTTP server.

Invariants:
- Every value is read when Prometheus scrapes, from the catalog (and the store's size, the drives' last TapeAlert
  flags): nothing is counted in memory, so the figures survive a restart and agree with `tapeline status`, the
  reports and the API. A scrape only reads; it never waits for a job.
- Job figures are added up once per job: at the first scrape over the whole history, then from the jobs that
  ended since (ids above the highest seen, and those seen queued or running), so a scrape reads a few rows however
  long the history, and the counters never go down when it is trimmed (a restart starts them again from the
  history, which Prometheus takes for a counter reset).
- An address that cannot be bound costs an alert, not the daemon: protection goes on without its monitoring.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select

from appliance.catalog.models import (JOB_FINISHED, Alert, Cartridge, Drive, Job, Library, Pool, ProtectionGroup,
                                      RecoveryPoint)
from appliance.media.pools import IN_LIBRARY
from appliance.ops import alerts

log = logging.getLogger("tapeline.metrics")

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400)
STORE_SIZE_TTL = 60.0  # seconds the store's size is reused: walking a big store on every scrape costs more than it says
ALERT_SEVERITIES = ("error", "warning", "info")
DRIVE_STATES = ("idle", "busy", "disabled")


def parse_listen(listen: str) -> tuple[str, int]:
    """("127.0.0.1", 9464) from "127.0.0.1:9464" (an IPv6 host in brackets: "[::1]:9464")."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class JobTotals:
    """The finished jobs added up, each once: by kind and outcome, their durations, and the bytes of each group's
    syncs."""

    def __init__(self):
        self.max_id = 0
        self.open: set[int] = set()  # jobs seen queued or running: read again until they end
        self.ended: Counter = Counter()  # (kind, state) -> jobs
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(DURATION_BUCKETS))
        self.took: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])  # kind -> [count, sum of seconds]
        self.read: Counter = Counter()
        self.new: Counter = Counter()

    def update(self, session) -> None:
        rows = session.exec(select(Job.id, Job.kind, Job.group_name, Job.state, Job.started, Job.finished, Job.result)
                            .where(or_(Job.id > self.max_id, Job.id.in_(self.open)))).all()
        for j in rows:
            self.max_id = max(self.max_id, j.id)
            if j.state not in JOB_FINISHED:
                self.open.add(j.id)
                continue
            self.open.discard(j.id)
            self.ended[(j.kind, j.state)] += 1
            if j.started and j.finished:
                secs = (j.finished - j.started).total_seconds()
                self.took[j.kind][0] += 1
                self.took[j.kind][1] += secs
                counts = self.buckets[j.kind]
                for i, bound in enumerate(DURATION_BUCKETS):
                    counts[i] += secs <= bound
            sync = (j.result or {}).get("sync") if j.group_name else None
            if sync:
                self.read[j.group_name] += int(sync.get("bytes_read") or 0)
                self.new[j.group_name] += int(sync.get("new_bytes") or 0)

    def families(self):
        done = CounterMetricFamily("tapeline_jobs_finished", "Jobs that ended, by kind and outcome",
                                   labels=["kind", "state"])
        for (kind, state), n in sorted(self.ended.items()):
            done.add_metric([kind, state], n)
        yield done
        hist = HistogramMetricFamily("tapeline_job_duration_seconds", "How long jobs ran (started to finished)",
                                     labels=["kind"])
        for kind, (n, total) in sorted(self.took.items()):
            buckets = [(str(b), c) for b, c in zip(DURATION_BUCKETS, self.buckets[kind])] + [("+Inf", n)]
            hist.add_metric([kind], buckets, sum_value=total)
        yield hist
        read = CounterMetricFamily("tapeline_changed_bytes", "Bytes of changed files a group's syncs read",
                                   labels=["group"])
        new = CounterMetricFamily("tapeline_new_bytes", "Bytes a group's syncs found new to the store (before "
                                  "compression)", labels=["group"])
        for group in sorted(self.read):
            read.add_metric([group], self.read[group])
            new.add_metric([group], self.new[group])
        yield read
        yield new


class ApplianceCollector(Collector):
    """Reads the figures from a running Appliance at each scrape."""

    def __init__(self, appliance, clock=lambda: datetime.now(timezone.utc)):
        self.appliance = appliance
        self.clock = clock
        self._store_size: tuple[float, int] | None = None
        self.totals = JobTotals()

    def collect(self):
        now = self.clock()
        cat = self.appliance.catalog
        with cat.reader() as s:
            self.totals.update(s)
            groups = s.exec(select(ProtectionGroup.id, ProtectionGroup.name)).all()
            ok = RecoveryPoint.state == "ok"
            held = dict(s.exec(select(RecoveryPoint.group_id, func.count()).where(ok)
                               .group_by(RecoveryPoint.group_id)).all())
            newest = (select(RecoveryPoint.group_id, func.max(RecoveryPoint.time).label("time")).where(ok)
                      .group_by(RecoveryPoint.group_id).subquery())
            latest = {gid: (when, nbytes) for gid, when, nbytes in s.exec(
                select(RecoveryPoint.group_id, RecoveryPoint.time, RecoveryPoint.bytes).where(ok).join(
                    newest, (RecoveryPoint.group_id == newest.c.group_id) & (RecoveryPoint.time == newest.c.time)))}
            logical = s.scalar(select(func.coalesce(func.sum(RecoveryPoint.bytes), 0)))
            open_alerts = s.exec(select(Alert.severity, func.count()).where(alerts.OPEN)
                                 .group_by(Alert.severity)).all()
            pools = s.exec(select(Pool.id, Pool.name, Pool.library_id)).all()
            scratch = s.exec(select(Cartridge.pool_id, Cartridge.library_id, func.count())
                             .where(Cartridge.state.in_(("scratch", "blank")), Cartridge.write_protected == False,  # noqa: E712
                                    Cartridge.location_kind.in_(IN_LIBRARY))
                             .group_by(Cartridge.pool_id, Cartridge.library_id)).all()
            drives = s.exec(select(Drive.library_id, Drive.number, Drive.enabled, Library.name)
                            .join(Library, Library.id == Drive.library_id)).all()
        yield from self.totals.families()
        yield from self._groups(groups, held, latest, now)
        yield from self._store(int(logical))
        yield from self._alerts(open_alerts)
        yield from self._tape(pools, scratch, drives)

    def _groups(self, groups, count: dict[int, int], latest: dict[int, tuple[datetime, int]], now: datetime):
        names = dict(groups)
        age = GaugeMetricFamily("tapeline_recovery_point_age_seconds",
                                "Seconds since the group's newest good recovery point (absent: none yet)",
                                labels=["group"])
        protected = GaugeMetricFamily("tapeline_protected_bytes", "Bytes of files in the group's newest good point",
                                      labels=["group"])
        held = GaugeMetricFamily("tapeline_recovery_points", "Good recovery points a group has", labels=["group"])
        for gid, name in sorted(names.items(), key=lambda x: x[1]):
            held.add_metric([name], count.get(gid, 0))
            if gid in latest:
                age.add_metric([name], max(0.0, (now - latest[gid][0]).total_seconds()))
                protected.add_metric([name], latest[gid][1])
        yield from (age, protected, held)

    def _store_bytes(self) -> int:
        if self._store_size is None or time.monotonic() - self._store_size[0] > STORE_SIZE_TTL:
            self._store_size = (time.monotonic(), self.appliance.store.size())
        return self._store_size[1]

    def _store(self, logical: int):
        size = self._store_bytes()
        yield GaugeMetricFamily("tapeline_store_size_bytes", "Bytes the replica store takes on disk", value=size)
        yield GaugeMetricFamily("tapeline_store_logical_bytes",
                                "Bytes of files all recovery points hold together", value=logical)
        yield GaugeMetricFamily("tapeline_store_dedup_ratio", "Logical bytes of all points per byte stored "
                                "(deduplication and compression together)", value=logical / size if size else 0.0)

    def _alerts(self, open_alerts):
        counts = Counter(dict(open_alerts))
        for live in self.appliance.live_alerts():
            counts[live.severity] += 1
        fam = GaugeMetricFamily("tapeline_alerts_open", "Alerts open (neither resolved nor acknowledged), by severity",
                                labels=["severity"])
        for sev in sorted(set(ALERT_SEVERITIES) | set(counts)):
            fam.add_metric([sev], counts[sev])
        yield fam

    def _tape(self, pools, scratch, drives):
        media = self.appliance.media
        fam = GaugeMetricFamily("tapeline_scratch_cartridges", "Cartridges in the pool's library that the pool may "
                                "write next (its own scratch cartridges and blank or unassigned ones)",
                                labels=["pool"])
        for pool_id, name, library_id in sorted(pools, key=lambda p: p[1]):
            fam.add_metric([name], sum(n for p, lib, n in scratch if lib == library_id and p in (None, pool_id)))
        yield fam
        busy = media.busy_drives() if media is not None else set()
        flags = dict(media.drive_flags) if media is not None else {}
        state = GaugeMetricFamily("tapeline_drive_state", "1 for the drive's state: idle, busy (a job holds it) or "
                                  "disabled", labels=["library", "drive", "state"])
        alert = GaugeMetricFamily("tapeline_drive_tapealert", "TapeAlert flags the drive reported at the end of its "
                                  "last job (1 while set)", labels=["library", "drive", "flag", "name"])
        for library_id, number, enabled, library in drives:
            now = "disabled" if not enabled else "busy" if (library_id, number) in busy else "idle"
            for st in DRIVE_STATES:
                state.add_metric([library, str(number), st], 1.0 if st == now else 0.0)
            for f in flags.get((library, number), ()):
                alert.add_metric([library, str(number), f"0x{f.number:02x}", f.name], 1.0)
        yield state
        yield alert


class MetricsServer:
    """prometheus_client's HTTP server on `listen`, over an ApplianceCollector."""

    def __init__(self, appliance, listen: str):
        self.listen = listen
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ApplianceCollector(appliance))
        self._server = None
        self._thread = None
        self.appliance = appliance

    def start(self) -> bool:
        host, port = parse_listen(self.listen)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.error("metrics not served on %s: %s", self.listen, exc.strerror or exc)
            alerts.raise_alert(self.appliance.catalog, "warning",
                               f"metrics are not served: {self.listen} cannot be listened on ({exc.strerror or exc})",
                               "free the address or set another [metrics] listen in the configuration file, "
                               "then restart the daemon", about=("metrics address", self.listen))
            return False
        alerts.resolve_message(self.appliance.catalog, "metrics are not served")
        log.info("metrics on http://%s/metrics", self.listen)
        return True

    @property
    def port(self) -> int:
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
