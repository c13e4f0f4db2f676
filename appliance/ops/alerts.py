"""Alerts: what a person must look at, each with the fix to apply.

Invariants: an alert is never duplicated while an identical one (same group, same message) is unacknowledged, nor
while one of the same condition is (`same_as`: a job of the group failing again updates the open alert);
acknowledging is the operator's act (`tapeline alerts ack ID`), except that a group's later successful job of the
same kind acknowledges the alerts that job's failure raised (`resolve`), as DPM does.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Alert
from appliance.errors import NotFound

log = logging.getLogger("tapeline.alerts")


def raise_alert(catalog: Catalog, severity: str, message: str, fix: str = "", group_name: str | None = None,
                job_id: int | None = None, same_as: str | None = None) -> int:
    """The id of the open alert saying this: a new one, or the one already open. `same_as`: a message prefix that
    makes two alerts the same condition whatever follows it (a group's sync failing again, with another job id
    and reason): the open one then takes the newest message, fix, job and severity instead of a second alert."""
    with catalog.session() as s:
        same = s.exec(select(Alert).where(Alert.message == message, Alert.group_name == group_name,
                                          Alert.acknowledged == False)).first()  # noqa: E712 (SQL expression)
        if same is not None:
            return same.id
        if same_as is not None:
            for alert in s.exec(select(Alert).where(Alert.group_name == group_name,
                                                    Alert.acknowledged == False)):  # noqa: E712
                if alert.message.startswith(same_as):
                    alert.message, alert.fix, alert.job_id, alert.severity = message, fix, job_id, severity
                    s.add(alert)
                    log.info("alert %s again: %s", alert.id, message)
                    return alert.id
        alert = Alert(severity=severity, message=message, fix=fix, group_name=group_name, job_id=job_id)
        s.add(alert)
        s.flush()
        alert_id = alert.id
    log.log(logging.ERROR if severity == "error" else logging.WARNING, "alert %s: %s: %s", alert_id, message, fix)
    return alert_id


def resolve(catalog: Catalog, group_name: str, prefix: str | tuple[str, ...]) -> None:
    """Acknowledge the group's open alerts whose message starts with `prefix` (a later run of the job succeeded)."""
    with catalog.session() as s:
        for alert in s.exec(select(Alert).where(Alert.group_name == group_name, Alert.acknowledged == False)):  # noqa: E712
            if alert.message.startswith(prefix):
                alert.acknowledged = True
                s.add(alert)


def list_alerts(catalog: Catalog, include_acknowledged: bool = False, limit: int = 100) -> list[Alert]:
    with catalog.reader() as s:
        q = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if not include_acknowledged:
            q = q.where(Alert.acknowledged == False)  # noqa: E712
        return list(s.exec(q).all())


def acknowledge(catalog: Catalog, alert_id: int) -> Alert:
    with catalog.session() as s:
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise NotFound(f"alert {alert_id} does not exist", "list alerts with `tapeline alerts`")
        alert.acknowledged = True
        s.add(alert)
    return alert


def resolve_message(catalog: Catalog, prefix: str) -> None:
    """Acknowledge the open alerts (of any group, or none) whose message starts with `prefix`: the condition a
    job raised them for has cleared (a cartridge arrived)."""
    with catalog.session() as s:
        for alert in s.exec(select(Alert).where(Alert.acknowledged == False)):  # noqa: E712
            if alert.message.startswith(prefix):
                alert.acknowledged = True
                s.add(alert)
