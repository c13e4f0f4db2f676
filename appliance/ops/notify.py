"""Notifications: a mail and a webhook POST for each burst of new alerts, a daily summary mail, and the mail other
parts of the appliance send (reports), all through an outbox that keeps them until they are delivered
(docs/notifications.md).

Invariants:
- Every alert row is notified once: the alerts are read from the catalog by id (not handed over in memory), and the
  ids handled are written to `notify-state.json` only after their notification is in the outbox. A daemon killed in
  between notifies them again on start (twice, never not at all).
- A burst is one notification: new alerts are gathered until none came for QUIET seconds (at most MAX_GATHER).
- A channel (mail, webhook) that fails raises one alert naming the cause and its fix, keeps everything in the outbox
  and is retried with a backoff (BACKOFF_FIRST doubling up to BACKOFF_MAX); its next delivery resolves the alert.
- The daily summary is sent once a day at mail.summary (local time): once on start when the daemon was down at that
  time, never twice on a day, whatever the clock does.
- A notification waiting in the outbox longer than STUCK_AFTER is an alert of its own for as long as it waits
  (`outbox_alerts`, not stored): the channel's failure alert may have been acknowledged, or the channel unset.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import socket
import threading
import time as time_mod
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import httpx
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.models import Alert, Job
from appliance.config import MailSettings
from appliance.errors import TapelineError, UsageError
from appliance.ops import alerts
from appliance.ops.mail import MailFailure, Session
from appliance.text import plural
from appliance.text import text_time
from appliance.ops.outbox import Outbox

log = logging.getLogger("tapeline.notify")

POLL = 1.0  # seconds between looks at the alert table
QUIET = 1.0  # a burst has ended when no alert came for this long
MAX_GATHER = 10.0  # ... or when it has gone on this long
BACKOFF_FIRST = 15.0
BACKOFF_MAX = 600.0
GAP_SECONDS = 60.0  # an alert id skipped this long was used up by a rolled-back transaction, not a slow one
WEBHOOK_TIMEOUT = 10.0
MAX_LISTED = 50  # alerts listed in one mail (a catalog's backlog after notifications were off is one mail too)
STUCK_AFTER = 3600.0  # seconds: retries reach BACKOFF_MAX long before, so the channel has failed many times

MAIL_PREFIX = "notification mail cannot be sent"
WEBHOOK_PREFIX = "the webhook cannot be delivered"
REFUSED_PREFIX = "the mail server refused the notification mail"
PARTLY_PREFIX = "notification mail did not reach"

Attachment = tuple[str, bytes | str] | tuple[str, bytes | str, str]


@dataclass
class _Channel:
    kind: str
    failures: int = 0
    next_try: float = 0.0
    alerted: bool = True  # its failure alert may be open (at start: one a previous daemon raised)

    def failed(self, now: float) -> None:
        self.next_try = now + min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** self.failures)
        self.failures += 1
        self.alerted = True

    def worked(self) -> bool:
        """Reset; True when its failure alert is to be resolved (once, not a catalog write per delivery)."""
        resolve, self.alerted = self.alerted, False
        self.failures, self.next_try = 0, 0.0
        return resolve


class Notifier:
    """Owned by the daemon: `start()` after the catalog is open, `stop()` before it closes.

    Public for other parts of the appliance: `send_mail` (queue a mail to the configured recipients) and
    `test_mail` (`tapeline mail test`)."""

    def __init__(self, catalog: Catalog, mail: MailSettings | None, webhook_url: str, data_dir: Path,
                 name: str | None = None, clock: Callable[[], datetime] | None = None,
                 live: Callable[[], list[Alert]] = lambda: [], timer: Callable[[], float] = time_mod.monotonic):
        """`clock`: the wall clock (the daily summary's time); `timer`: seconds for bursts and retries, the
        monotonic clock unless a simulated clock drives the notifier (`step`) and must move both."""
        self.catalog = catalog
        self.timer = timer
        self.live = live  # alerts not stored (the catalog cannot be written): notified when they appear
        self._live_seen: set[str] = set()
        self.mail = mail
        self.webhook_url = webhook_url
        self.name = name or socket.gethostname()
        self.clock = clock or (lambda: datetime.now().astimezone())
        self.outbox = Outbox(data_dir / "outbox")
        self._state_file = data_dir / "notify-state.json"
        self._channels = {"mail": _Channel("mail"), "webhook": _Channel("webhook")}
        self._held: dict[str, _Channel] = {}  # outbox mail the server refused for its content: its own backoff
        self._batch: list[Alert] = []
        self._batch_first = self._batch_last = 0.0
        self._gap: tuple[int, float] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one delivery at a time: the thread's, or `tapeline mail test`'s
        self.last_error: dict | None = None  # {time, channel, message, fix} of the last failed delivery
        if self.enabled:
            self._load_state()

    @property
    def enabled(self) -> bool:
        return self.mail is not None or bool(self.webhook_url)

    # -- public -------------------------------------------------------------------------------------------------

    def send_mail(self, subject: str, text: str, html: str | None = None,
                  attachments: Iterable[Attachment] = ()) -> str:
        """Queue a mail to mail.recipients and return its outbox name; the notifier's thread delivers it (at once,
        or retried while the server is down). The subject gets the "[Tapeline HOST]" prefix every Tapeline mail has.
        `attachments`: (file name, content) or (file name, content, "type/subtype"); the type is guessed from the
        name when not given; text content is sent as UTF-8. Raises UsageError when mail is not configured."""
        msg = self._message(subject, text, html, attachments)
        name = self.outbox.put("mail", msg.as_bytes(policy=SMTP_POLICY))
        self._wake.set()
        return name

    def test_mail(self) -> dict:
        """Send a test mail now, not through the outbox; raises MailFailure naming the cause and the fix. Success
        also retries the outbox at once."""
        msg = self._message("test mail", f"This is a test mail from Tapeline on {self.name}, sent by "
                            "`tapeline mail test`.\nMail for new alerts and the daily summary will reach you like "
                            "this one.\n")
        with self._lock, Session(self.mail) as session:
            refused = session.send(msg)
        self._mail_worked(refused)
        self._wake.set()
        m = self.mail
        return {"server": f"{m.host}:{m.port}", "security": m.security, "sender": m.sender,
                "recipients": [r for r in m.recipients if r not in refused], "refused": refused}

    def outbox_state(self) -> dict:
        """What waits to leave (`tapeline status`): counts, the oldest one's time, the last delivery error."""
        waiting = {kind: self.outbox.names(kind) for kind in ("mail", "webhook")}
        since = min((self.outbox.made(n) for names in waiting.values() for n in names), default=None)
        age = max(0.0, (self.clock() - since).total_seconds()) if since else 0.0
        return {"path": str(self.outbox.root), "mail": len(waiting["mail"]), "webhook": len(waiting["webhook"]),
                "oldest": since.isoformat() if since else None, "oldest_age_s": round(age),
                "last_error": self.last_error, "stuck": age >= STUCK_AFTER}

    def outbox_alerts(self, state: dict | None = None) -> list[Alert]:
        """The outbox stuck for longer than STUCK_AFTER, as an alert lasting as long as it is (not stored). Its
        message stays the same while the same notification is the oldest, so it is notified once."""
        st = state or self.outbox_state()
        if not st["stuck"]:
            return []
        since = datetime.fromisoformat(st["oldest"])
        if st["mail"] and self.mail is None or st["webhook"] and not self.webhook_url:
            fix = ("mail is not configured (mail.host is empty) or the webhook is not (webhook.url): set it and "
                   "restart the daemon, or delete the files to give them up")
        elif st["last_error"]:
            fix = (f"the last delivery failed: {st['last_error']['message']}: {st['last_error']['fix']}; or "
                   "delete the files to give them up")
        else:
            fix = "check the daemon's log (journalctl -u tapeline); `tapeline mail test` checks mail"
        return [Alert(severity="error", message=f"notifications have waited in the outbox {st['path']} since "
                      f"{text_time(since)}: nobody is told of new alerts", fix=fix, time=since,
                      object_kind="outbox", object_name=st["path"])]

    def _failed_delivery(self, channel: str, message: str, fix: str) -> None:
        self.last_error = {"time": self.clock().astimezone(timezone.utc).isoformat(), "channel": channel,
                           "message": message, "fix": fix}

    # -- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="tapeline-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Queue what was gathered and stop; what could not be delivered stays in the outbox for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(WEBHOOK_TIMEOUT + 5)
            if self._thread.is_alive():
                return  # stuck in an exchange with a server: what it gathered is gathered again on the next start
            self._thread = None
        if self._batch:
            self._queue_batch()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the notifier must outlive whatever breaks one round (the catalog, a full disk)
                log.exception("notifications")
            self._wake.wait(POLL)
            self._wake.clear()

    def step(self) -> None:
        """One round: gather new alerts, queue a burst that has ended, queue the summary when due, deliver."""
        now = self.timer()
        live = self.live()
        new = [a for a in live if a.message not in self._live_seen]
        self._live_seen = {a.message for a in live}  # one that clears and comes back is news again
        new += self._new_alerts(now)
        if new:
            if not self._batch:
                self._batch_first = now
            self._batch += new
            self._batch_last = now
        if self._batch and (now - self._batch_last >= QUIET or now - self._batch_first >= MAX_GATHER):
            self._queue_batch()
        if self._summary_due():
            self._queue_summary()
        with self._lock:
            self._deliver_mail(now)
            self._deliver_webhook(now)

    # -- new alerts ---------------------------------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            state = json.loads(self._state_file.read_text())
            self._floor, self._above = int(state["floor"]), set(state["above"])
            self._summary_date = date.fromisoformat(state["summary_date"])
        except FileNotFoundError:
            # First start: what is in the catalog already is history, not news; today's summary time, if passed,
            # is not made up for.
            with self.catalog.reader() as s:
                ids = s.exec(select(Alert.id).order_by(Alert.id.desc()).limit(1)).all()
            self._floor, self._above = (ids[0] if ids else 0), set()
            today = self.clock().date()
            self._summary_date = today if self._summary_time() <= self.clock() else today - timedelta(days=1)
            self._save_state()
        except (ValueError, KeyError, TypeError) as exc:
            raise TapelineError(f"{self._state_file} is damaged ({exc})",
                                "delete it: alerts raised while the daemon was stopped are then not mailed") from None

    def _save_state(self) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"floor": self._floor, "above": sorted(self._above),
                                   "summary_date": self._summary_date.isoformat()}))
        os.replace(tmp, self._state_file)

    def _new_alerts(self, now: float) -> list[Alert]:
        with self.catalog.reader() as s:
            rows = s.exec(select(Alert).where(Alert.id > self._floor).order_by(Alert.id)).all()
        gathered = {a.id for a in self._batch if a.id is not None}
        new = [a for a in rows if a.id not in self._above and a.id not in gathered]
        seen = self._above | gathered | {a.id for a in new}
        # Ids are handed out before their transaction commits: an id missing below ones seen may yet appear.
        missing = self._floor + 1
        if seen and missing not in seen:
            if self._gap is None or self._gap[0] != missing:
                self._gap = (missing, now)
            elif now - self._gap[1] >= GAP_SECONDS:
                self._floor, self._gap = missing, None
                self._advance()
                self._save_state()
        return new

    def _advance(self) -> None:
        while self._floor + 1 in self._above:
            self._floor += 1
            self._above.discard(self._floor)

    def _queue_batch(self) -> None:
        batch, self._batch = self._batch, []
        with self.catalog.reader() as s:  # whether each is still open, as the mail says
            open_ids = set(s.exec(select(Alert.id).where(Alert.id.in_([a.id for a in batch if a.id is not None]),
                                                         alerts.OPEN)).all())
        open_ids.add(None)  # a live alert lasts as long as its condition
        if self.mail is not None:
            subject = (f"{batch[0].severity}: {batch[0].message}" if len(batch) == 1 else
                       f"{plural(len(batch), 'new alert')} ({_counts(batch)})")
            self.send_mail(subject[:150], _alerts_text(self.name, batch, open_ids))
        if self.webhook_url:
            payload = {"text": f"Tapeline on {self.name}: {plural(len(batch), 'new alert')}\n"
                               + "\n".join(f"- {a.severity}: {a.message} (fix: {a.fix})" for a in batch[:MAX_LISTED]),
                       "appliance": self.name,
                       "alerts": [_alert_json(a, a.id in open_ids) for a in batch[:MAX_LISTED]]}
            self.outbox.put("webhook", json.dumps(payload).encode())
        self._above |= {a.id for a in batch if a.id is not None}
        self._advance()
        self._save_state()

    # -- daily summary ------------------------------------------------------------------------------------------

    def _summary_time(self) -> datetime:
        hh, mm = map(int, (self.mail.summary if self.mail and self.mail.summary else "00:00").split(":"))
        now = self.clock()
        return datetime.combine(now.date(), time(hh, mm), now.tzinfo)

    def _summary_due(self) -> bool:
        if self.mail is None or not self.mail.summary:
            return False
        return self._summary_date < self.clock().date() and self._summary_time() <= self.clock()

    def _queue_summary(self) -> None:
        now = self.clock()
        since = now - timedelta(days=1)
        self.send_mail(f"daily summary {now.date().isoformat()}", summary_text(self.catalog, self.name, since, now))
        self._summary_date = now.date()
        self._save_state()

    # -- delivery -----------------------------------------------------------------------------------------------

    def _message(self, subject: str, text: str, html: str | None = None,
                 attachments: Iterable[Attachment] = ()) -> EmailMessage:
        m = self.mail
        if m is None:
            raise UsageError("mail is not configured (mail.host is empty)",
                             "set [mail] host, sender and recipients in the configuration file and restart the daemon")
        msg = EmailMessage()
        msg["Subject"] = f"[Tapeline {self.name}] {subject}"
        msg["From"] = m.sender
        msg["To"] = ", ".join(m.recipients)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=self.name)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for item in attachments:
            filename, content = item[0], item[1]
            ctype = item[2] if len(item) > 2 else mimetypes.guess_type(filename)[0] or "application/octet-stream"
            maintype, _, subtype = ctype.partition("/")
            if isinstance(content, str) and maintype == "text":
                msg.add_attachment(content, subtype=subtype, filename=filename)
            else:
                data = content.encode() if isinstance(content, str) else content
                msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return msg

    def _deliver_mail(self, now: float) -> None:
        channel = self._channels["mail"]
        names = [n for n in self.outbox.names("mail") if now >= self._held.get(n, _Channel("")).next_try]
        if not names or self.mail is None or now < channel.next_try:
            return
        m = self.mail
        try:
            with Session(m) as session:
                for name in names:
                    msg = BytesParser(policy=SMTP_POLICY).parsebytes(self.outbox.read(name))
                    for header, value in (("From", m.sender), ("To", ", ".join(m.recipients))):
                        del msg[header]  # the configuration now in force: a fixed typo reaches the right people
                        msg[header] = value
                    try:
                        refused = session.send(msg)
                    except MailFailure as exc:
                        if not exc.message_only:
                            raise
                        self._held.setdefault(name, _Channel(name)).failed(now)  # it alone waits, not the others
                        self._failed_delivery("mail", f"{exc.message} ({name})", exc.fix)
                        log.warning("mail: %s (%s)", exc, self.outbox.root / name)
                        alerts.raise_alert(self.catalog, "error", f"{REFUSED_PREFIX} {self.outbox.root / name}: "
                                           f"{exc.message}", f"{exc.fix}; it is tried again now and then: delete "
                                           "the file to give it up", about=("outbox mail", name))
                        continue
                    self.outbox.remove(name)
                    if self._held.pop(name, None) is not None:
                        alerts.resolve_message(self.catalog, f"{REFUSED_PREFIX} {self.outbox.root / name}:")
                    self._mail_worked(refused)
        except MailFailure as exc:
            self._mail_failed(exc, now)

    def _mail_worked(self, refused: dict[str, str]) -> None:
        if self._channels["mail"].worked():
            alerts.resolve_message(self.catalog, MAIL_PREFIX)
        if refused:  # open until acknowledged: the next mail would be refused the same way
            alerts.raise_alert(self.catalog, "warning", f"{PARTLY_PREFIX}: "
                               + "; ".join(f"{a} (the server answered {r})" for a, r in refused.items()),
                               "check mail.recipients; the others received it", about=self._mail_server())

    def _mail_failed(self, exc: MailFailure, now: float) -> None:
        channel = self._channels["mail"]
        channel.failed(now)
        self._failed_delivery("mail", exc.message, exc.fix)
        log.warning("mail: %s (next try in %.0f s)", exc, channel.next_try - now)
        alerts.raise_alert(self.catalog, "error", f"{MAIL_PREFIX}: {exc.message}",
                           f"{exc.fix}; check with `tapeline mail test`. Mail is kept and sent when it works",
                           same_as=MAIL_PREFIX + ":",  # another cause is the same outage: the open alert says it
                           about=self._mail_server())

    def _mail_server(self) -> tuple[str, str]:
        return "mail server", f"{self.mail.host}:{self.mail.port}"

    def _deliver_webhook(self, now: float) -> None:
        channel = self._channels["webhook"]
        names = self.outbox.names("webhook")
        if not names or not self.webhook_url or now < channel.next_try:
            return
        parts = urlsplit(self.webhook_url)
        shown = f"{parts.scheme}://{parts.netloc}"  # its path is often the secret
        try:
            with httpx.Client(timeout=WEBHOOK_TIMEOUT) as client:
                for name in names:
                    resp = client.post(self.webhook_url, content=self.outbox.read(name),
                                       headers={"content-type": "application/json"})
                    if not resp.is_success:
                        raise TapelineError(f"{shown} answered {resp.status_code} {resp.reason_phrase}",
                                            "check webhook.url and the receiver's log")
                    self.outbox.remove(name)
        except (httpx.HTTPError, TapelineError) as exc:
            err = exc if isinstance(exc, TapelineError) else TapelineError(
                f"cannot reach {shown} ({exc})", "check webhook.url and that the receiver runs")
            channel.failed(now)
            self._failed_delivery("webhook", err.message, err.fix)
            log.warning("webhook: %s (next try in %.0f s)", err, channel.next_try - now)
            alerts.raise_alert(self.catalog, "error", f"{WEBHOOK_PREFIX}: {err.message}",
                               f"{err.fix}. Its posts are kept and sent when it works", same_as=WEBHOOK_PREFIX + ":",
                               about=("webhook", shown))
            return
        if channel.worked():
            alerts.resolve_message(self.catalog, WEBHOOK_PREFIX)


# -- texts -----------------------------------------------------------------------------------------------------

def _counts(batch: list[Alert]) -> str:
    by: dict[str, int] = {}
    for a in batch:
        by[a.severity] = by.get(a.severity, 0) + 1
    return ", ".join(plural(n, sev) for sev, n in sorted(by.items()))


def _alert_json(a: Alert, still_open: bool) -> dict:
    return {"id": a.id, "severity": a.severity, "group": a.group_name, "job": a.job_id, "message": a.message,
            "fix": a.fix, "time": a.time.astimezone(timezone.utc).isoformat(), "open": still_open}


def _alerts_text(name: str, batch: list[Alert], open_ids: set[int]) -> str:
    lines = [f"Tapeline on {name} raised {plural(len(batch), 'alert')}:", ""]
    for a in batch[:MAX_LISTED]:
        about = f"  group {a.group_name}" if a.group_name else ""
        state = "" if a.id in open_ids else "  (resolved since)"
        lines += [f"{a.severity.upper()}  alert {a.id or '-'}  {text_time(a.time)}{about}{state}",
                  f"  {a.message}", f"  Fix: {a.fix or '-'}", ""]
    if len(batch) > MAX_LISTED:
        lines += [f"... and {len(batch) - MAX_LISTED} more: `tapeline alerts --all` lists them.", ""]
    lines.append("`tapeline alerts` lists the open alerts; `tapeline alerts ack ID` acknowledges one.")
    return "\n".join(lines) + "\n"


def summary_text(catalog: Catalog, name: str, since: datetime, now: datetime) -> str:
    """The daily summary: the day's jobs, the alerts raised, and what is still open."""
    with catalog.reader() as s:
        jobs = s.exec(select(Job).where(Job.finished >= since).order_by(Job.id)).all()
        raised = s.exec(select(Alert).where(Alert.time >= since).order_by(Alert.id)).all()
        still = s.exec(select(Alert).where(alerts.OPEN).order_by(Alert.id)).all()
    by_state: dict[str, int] = {}
    for j in jobs:
        by_state[j.state] = by_state.get(j.state, 0) + 1
    lines = [f"Tapeline on {name}, {text_time(since)} to {text_time(now)}", "",
             f"Jobs finished: {len(jobs)}" + (f" ({', '.join(f'{n} {st}' for st, n in sorted(by_state.items()))})"
                                               if jobs else "")]
    for j in jobs:
        if j.state in ("failed", "cancelled"):
            lines.append(f"  job {j.id} {j.kind} of {j.group_name or j.params.get('library') or '-'} "
                         f"{j.state}: {j.reason or '-'}")
    lines += ["", f"Alerts raised: {len(raised)}", f"Alerts open: {len(still)}"]
    for a in still:
        lines += [f"  {a.severity.upper()}  alert {a.id}  {text_time(a.time)}  {a.message}", f"    Fix: {a.fix or '-'}"]
    lines += ["", "All is well: nothing needs a person." if not still else
              "`tapeline alerts` lists the open alerts; `tapeline alerts ack ID` acknowledges one."]
    return "\n".join(lines) + "\n"
