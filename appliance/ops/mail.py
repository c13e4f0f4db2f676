"""Sending mail over SMTP (the standard library's smtplib and ssl): plain, STARTTLS or implicit TLS, with AUTH.

Every failure becomes a MailFailure naming the cause in the operator's terms and the configuration key that fixes it.
`message_only` marks the failures of one message (the server refused its content): the others are the server's or the
configuration's, and the next message would fail the same way.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from appliance.config import MailSettings
from appliance.errors import TapelineError

TIMEOUT = 30.0  # seconds for each exchange with the server


class MailFailure(TapelineError):
    def __init__(self, message: str, fix: str, message_only: bool = False):
        super().__init__(message, fix)
        self.message_only = message_only


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {text.splitlines()[0] if text else ''}".strip()


class Session:
    """One connection to the mail server: `with Session(settings) as s: s.send(msg)`."""

    def __init__(self, m: MailSettings):
        self.m = m
        self.where = f"{m.host}:{m.port}"
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> "Session":
        m = self.m
        password = None
        if m.user:
            try:
                password = m.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise MailFailure(f"cannot read mail.password_file {m.password_file} ({exc.strerror})",
                                  "make it readable by the daemon's user, or fix the path") from None
        context = ssl.create_default_context(cafile=str(m.ca_file) if m.ca_file else None)
        step = "connect"
        try:
            if m.security == "tls":
                self.smtp = smtplib.SMTP_SSL(m.host, m.port, timeout=TIMEOUT, context=context)
            else:
                self.smtp = smtplib.SMTP(m.host, m.port, timeout=TIMEOUT)
            if m.security == "starttls":
                step = "starttls"
                self.smtp.starttls(context=context)
            if m.user:
                step = "login"
                self.smtp.login(m.user, password)
        except BaseException as exc:
            self.close()
            raise self._explain(exc, step) from exc
        return self

    def send(self, msg: EmailMessage) -> dict[str, str]:
        """Send `msg` to its To addresses; returns the recipients the server refused when it took the others."""
        to = [addr for _, addr in getaddresses(msg.get_all("To", []))]
        try:
            refused = self.smtp.send_message(msg, from_addr=parseaddr(self.m.sender)[1], to_addrs=to)
        except BaseException as exc:
            raise self._explain(exc, "send") from exc
        return {addr: _reply(smtplib.SMTPResponseException(code, text)) for addr, (code, text) in refused.items()}

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    def __exit__(self, *exc) -> None:
        self.close()

    def _explain(self, exc: BaseException, step: str) -> BaseException:
        m, where = self.m, self.where
        server = f"the mail server {where}"
        if isinstance(exc, MailFailure) or not isinstance(exc, (OSError, smtplib.SMTPException)):
            return exc
        if isinstance(exc, socket.gaierror):
            return MailFailure(f"the mail host {m.host} is not known ({exc.strerror})", "check mail.host")
        if isinstance(exc, ConnectionRefusedError):
            return MailFailure(f"{server} refused the connection",
                               "check mail.host and mail.port, and that the mail server runs")
        if isinstance(exc, TimeoutError):
            return MailFailure(f"{server} did not answer within {TIMEOUT:.0f} s",
                               "check mail.host and mail.port, and that no firewall drops the connection")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return MailFailure(f"{server} has a certificate this appliance does not trust ({exc.verify_message})",
                               "give the CA that signed it in mail.ca_file, or fix the server's certificate")
        if isinstance(exc, ssl.SSLError):
            return MailFailure(f"TLS with {server} failed ({exc.reason or exc})",
                               f'check mail.security ({m.security!r}): "tls" is TLS from the first byte (port 465), '
                               '"starttls" upgrades a plain connection (port 587 or 25)')
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "starttls":
            return MailFailure(f"{server} does not offer STARTTLS",
                               'set mail.security to what the server speaks ("tls" or "none")')
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "login":
            return MailFailure(f"{server} offers no login (AUTH) on this connection",
                               'use mail.security = "starttls" or "tls" (servers offer AUTH over TLS only), or '
                               "leave mail.user empty if it takes mail without a login")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailFailure(f"{server} refused the login of user {m.user!r} ({_reply(exc)})",
                               "check mail.user and the password in mail.password_file")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return MailFailure(f"{server} refused the sender {m.sender!r} ({_reply(exc)})",
                               "set mail.sender to an address the server accepts from this appliance")
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = "; ".join(f"{a}: {_reply(smtplib.SMTPResponseException(*r))}"
                                for a, r in exc.recipients.items())
            return MailFailure(f"{server} refused every recipient ({refused})", "check mail.recipients")
        if isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500:
            return MailFailure(f"{server} refused a message ({_reply(exc)})",
                               "see the server's limits (size, content)",
                               message_only=True)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return MailFailure(f"{server} closed the connection ({exc or 'at once'})",
                               f'check mail.port and mail.security ({m.security!r}) against what the server expects')
        if isinstance(exc, smtplib.SMTPResponseException):
            return MailFailure(f"{server} answered {_reply(exc)} at {step}",
                               "see the server's log; it is tried again later")
        return MailFailure(f"cannot reach {server} ({getattr(exc, 'strerror', None) or exc})",
                           "check mail.host and mail.port, and the network")
