"""Alerts: what a person must look at, each with the fix to apply and the object it concerns.

Invariants:
- An alert is open until its condition clears (`resolve`: it gets the time it resolved) or an operator acknowledges
  it (`tapeline alerts ack ID`); only open alerts count for `tapeline status`.
- An alert is never duplicated while an identical one (same group, same message) is open, nor while one of the same
  condition is (`same_as`: a job of the group failing again updates the open alert). The same condition coming back
  after it resolved is a new alert: each outage is one alert, with its own start and end.
- A group's later successful job of the same kind resolves the alerts that job's failure raised, as DPM does.
- Closed alerts are kept for `jobs.keep_history`, then deleted (`forget_old`), except the newest alert of all: the
  notifier tells new alerts by an id above the ones it handled, and SQLite hands the highest id out again once its
  row is gone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Alert, utcnow
from appliance.errors import NotFound

log = logging.getLogger("tapeline.alerts")

OPEN = and_(Alert.acknowledged == False, Alert.resolved.is_(None))  # noqa: E712 (SQL expression)


def raise_alert(catalog: Catalog, severity: str, message: str, fix: str = "", group_name: str | None = None,
                job_id: int | None = None, same_as: str | None = None,
                about: tuple[str, str] | None = None) -> int:
    """The id of the open alert saying this: a new one, or the one already open. `same_as`: a message prefix that
    makes two alerts the same condition whatever follows it (a group's sync failing again, with another job id
    and reason): the open one then takes the newest message, fix, job and severity instead of a second alert.
    `about`: the object it concerns, (kind, name); a group's alert concerns the group unless told otherwise."""
    kind, name = about or (("group", group_name) if group_name else (None, None))
    with catalog.session() as s:
        same = s.exec(select(Alert).where(Alert.message == message, Alert.group_name == group_name, OPEN)).first()
        if same is not None:
            return same.id
        if same_as is not None:
            for alert in s.exec(select(Alert).where(Alert.group_name == group_name, OPEN)):
                if alert.message.startswith(same_as):
                    alert.message, alert.fix, alert.job_id, alert.severity = message, fix, job_id, severity
                    alert.object_kind, alert.object_name = kind, name
                    s.add(alert)
                    log.info("alert %s again: %s", alert.id, message)
                    return alert.id
        alert = Alert(severity=severity, message=message, fix=fix, group_name=group_name, job_id=job_id,
                      object_kind=kind, object_name=name)
        s.add(alert)
        s.flush()
        alert_id = alert.id
    log.log(logging.ERROR if severity == "error" else logging.WARNING, "alert %s: %s: %s", alert_id, message, fix)
    return alert_id


def resolve(catalog: Catalog, group_name: str | None, prefix: str | tuple[str, ...]) -> None:
    """Resolve the group's open alerts whose message starts with `prefix` (a later run of the job succeeded)."""
    _resolve(catalog, prefix, Alert.group_name == group_name)


def resolve_message(catalog: Catalog, prefix: str | tuple[str, ...]) -> None:
    """Resolve the open alerts (of any group, or none) whose message starts with `prefix`: the condition they were
    raised for has cleared (a cartridge arrived, the mail server took a mail)."""
    _resolve(catalog, prefix)


def _resolve(catalog: Catalog, prefix: str | tuple[str, ...], *where) -> None:
    with catalog.session() as s:
        for alert in s.exec(select(Alert).where(OPEN, *where)):
            if alert.message.startswith(prefix):
                alert.resolved = utcnow()
                s.add(alert)
                log.info("alert %s resolved: %s", alert.id, alert.message)


def list_alerts(catalog: Catalog, include_closed: bool = False, limit: int = 100) -> list[Alert]:
    """The open alerts, newest first; with `include_closed`, the resolved and acknowledged ones too."""
    with catalog.reader() as s:
        q = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if not include_closed:
            q = q.where(OPEN)
        return list(s.exec(q).all())


def acknowledge(catalog: Catalog, alert_id: int) -> Alert:
    with catalog.session() as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"alert {alert_id} does not exist", "list alerts with `tapeline alerts`")
        alert.acknowledged = True
        s.add(alert)
    return alert


def forget_old(catalog: Catalog, keep_seconds: int, now=None) -> int:
    """Delete the alerts resolved more than `keep_seconds` ago, and the acknowledged ones raised that long ago;
    returns how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=keep_seconds)
    with catalog.session() as s:
        newest = s.exec(select(func.max(Alert.id))).one()
        if newest is None:
            return 0
        gone = s.execute(delete(Alert).where(
            Alert.id < newest, or_(Alert.resolved < cutoff, and_(Alert.acknowledged == True,  # noqa: E712
                                                                 Alert.time < cutoff)))).rowcount
    if gone:
        log.info("forgot %d alert(s) closed before %s (jobs.keep_history)", gone, cutoff.isoformat())
    return gone


def job_object(job) -> tuple[str, str]:
    """What a job's alert concerns: its group, else the cartridge, library, pool or report it works on."""
    params = job.params or {}
    if job.group_id is None:
        for key in ("barcode", "library", "pool", "report"):
            if params.get(key):
                return "cartridge" if key == "barcode" else key, str(params[key])
    return ("group", job.group_name) if job.group_name else ("job", str(job.id))
