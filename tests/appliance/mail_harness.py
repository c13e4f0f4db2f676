"""Real receivers for the notification tests: an SMTP server (aiosmtpd) on loopback, plain, STARTTLS or implicit
TLS, with AUTH; a test CA and a server certificate made here (cryptography); an HTTP receiver for webhooks
(http.server in a thread). bench/alert_mail.py uses them too."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "tapeline", "s3cret pass"


def free_port() -> int:
    # aiosmtpd's readiness check connects to the port it was given, so port 0 cannot be used (RECIPES.md).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signed for localhost and 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tapeline test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class _Collect:
    def __init__(self, server: "MailServer"):
        self.server = server

    async def handle_RCPT(self, _server, _session, envelope, address, _options):
        if address in self.server.refuse_rcpt:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server, session, envelope):
        if self.server.refuse_data:
            return self.server.refuse_data
        with self.server.cond:
            self.server.times.append(time.time())
            self.server.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                                         message_from_bytes(envelope.original_content, policy=default_policy),
                                         bool(session.authenticated)))
            self.server.cond.notify_all()
        return "250 OK"


class MailServer:
    """aiosmtpd on 127.0.0.1. security: "none" | "starttls" | "tls"; auth: require USER/PASSWORD."""

    def __init__(self, security: str = "none", cert: tuple[Path, Path, Path] | None = None, auth: bool = False,
                 port: int | None = None):
        self.port = port or free_port()
        self.security = security
        self.received: list[tuple[str, list[str], Message, bool]] = []
        self.times: list[float] = []  # when each was received (time.time())
        self.cond = threading.Condition()
        self.refuse_data: str | None = None  # the answer to DATA instead of 250, e.g. "552 ..."
        self.refuse_rcpt: set[str] = set()  # recipients answered 550
        kwargs: dict = {}
        if security != "none":
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert[1]), str(cert[2]))
            kwargs = {"tls_context": ctx, "require_starttls": True} if security == "starttls" else {"ssl_context": ctx}
        if auth:
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; implicit TLS is encrypted all the same.
            kwargs.update(authenticator=self._check, auth_require_tls=security == "starttls", auth_required=True)
        self.controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port, **kwargs)

    @staticmethod
    def _check(_server, _session, _envelope, _mechanism, data) -> AuthResult:
        # handled=False: aiosmtpd then answers 535 itself (handled=True would mean this callback had answered)
        return AuthResult(success=(data.login, data.password) == (USER.encode(), PASSWORD.encode()), handled=False)

    def start(self) -> "MailServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait(self, count: int = 1, timeout: float = 30.0) -> list[tuple[str, list[str], Message, bool]]:
        """The messages received, once there are `count` of them (AssertionError after `timeout` seconds)."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} mail(s) received in {timeout} s, wanted {count}")
            return list(self.received)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 keeping the JSON bodies POSTed to it; `status` is what it answers."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.status == 200:
                    with receiver.cond:
                        receiver.bodies.append(json.loads(body))
                        receiver.cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait(self, count: int = 1, timeout: float = 30.0) -> list[dict]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.bodies) >= count, timeout):
                raise AssertionError(f"{len(self.bodies)} webhook post(s) in {timeout} s, wanted {count}")
            return list(self.bodies)


def wait_until(predicate, timeout: float = 30.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
