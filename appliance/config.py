"""Configuration: one TOML file, every key with a default (docs/configuration.md, etc/tapeline.toml).

Where the settings come from, in order: the embedded defaults; the file (`--config FILE`, else
/etc/tapeline/tapeline.toml when it exists); then `--data DIR` / `TAPELINE_DATA`, which selects a development data
directory and puts everything not set explicitly in the file under it (the API socket included).

Invariants: `Settings` is frozen and fully resolved (absolute paths, durations in seconds, times as (hour, minute));
every bad value is reported as one `ConfigError` line naming the key and the fix. Paths derived from the data
directory are derived once, here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from appliance.errors import ConfigError, UsageError

DEFAULT_CONFIG_FILE = Path("/etc/tapeline/tapeline.toml")
DEFAULT_DATA_DIR = Path("/var/lib/tapeline")
SERVICE_SOCKET = Path("/run/tapeline/tapeline.sock")
DEFAULT_POINT_TIMES = ("08:00", "11:00", "14:00", "17:00", "20:00")
LOG_LEVELS = ("debug", "info", "warning", "error")

_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_DURATION = 100 * 365 * 86400  # longer means nothing here, and would overflow the scheduler's date arithmetic
TOO_LONG = "longer than 100 years"


def parse_duration(text: str | int) -> int:
    """Seconds in "15m", "1h30m", "12d", "90s" (a bare integer is seconds), up to MAX_DURATION. Raises ValueError on
    anything else."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(text)
        if text > MAX_DURATION:
            raise ValueError(TOO_LONG)
        return text
    s = str(text).strip().lower()
    if s.isdigit():
        seconds = int(s)
    else:
        pos, seconds = 0, 0
        for m in _DURATION_RE.finditer(s):
            if m.start() != pos and s[pos:m.start()].strip():
                raise ValueError(text)
            seconds += int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos == 0 or s[pos:].strip():
            raise ValueError(text)
    if seconds <= 0:
        raise ValueError(text)
    if seconds > MAX_DURATION:
        raise ValueError(TOO_LONG)
    return seconds


def parse_times(value: str | list | tuple) -> tuple[str, ...]:
    """Recovery-point times "08:00,11:00" (or a list) as sorted, unique "HH:MM" strings. Raises ValueError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = set()
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", item)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(item)
        out.add(f"{int(m.group(1)):02d}:{m.group(2)}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    catalog_url: str
    socket_path: Path
    operators_group: str
    store_path: Path
    sync_seconds: int
    point_times: tuple[str, ...]
    keep_seconds: int
    log_level: str
    workers: int
    vtl_dir: Path
    vtl_listen: str
    config_file: Path | None = None
    development: bool = False
    media_block_size: int = 256 * 1024
    reuse_delay_seconds: int = 7 * 86400
    drive_failures: int = 3
    syncs: int = 2
    retries: int = 3
    retry_delay_seconds: int = 60
    keep_history_seconds: int = 90 * 86400
    metrics_listen: str = ""  # HOST:PORT; empty: no metrics
    report_mail: tuple[str, ...] = ()  # reports mailed every day (names checked by the daemon: ops/reports)
    report_mail_at: str = "07:00"
    report_days: int = 7
    mail: "MailSettings | None" = None  # None: no mail (mail.host empty)
    webhook_url: str = ""


MAIL_SECURITY = {"none": 25, "starttls": 587, "tls": 465}  # and each one's standard port


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: str
    user: str
    password_file: Path | None
    sender: str
    recipients: tuple[str, ...]
    summary: str | None  # "HH:MM" of the daily summary, None: none
    ca_file: Path | None  # a CA bundle to trust instead of the system's


# Every key the file may hold: section -> key -> default (None: derived from data_dir, see load()).
KEYS: dict[str, dict[str, object]] = {
    "": {"data_dir": str(DEFAULT_DATA_DIR)},
    "catalog": {"url": None},
    "api": {"socket": None, "group": "tapeline"},
    "store": {"path": None},
    "defaults": {"sync": "15m", "points": list(DEFAULT_POINT_TIMES), "keep": "12d"},
    "log": {"level": "info"},
    "jobs": {"workers": 2, "syncs": 2, "retries": 3, "retry_delay": "1m", "keep_history": "90d"},
    "vtl": {"dir": None, "listen": "127.0.0.1:7101"},
    "media": {"block_size": 256 * 1024, "reuse_delay": "7d", "drive_failures": 3},
    "metrics": {"listen": ""},
    "reports": {"mail": [], "mail_at": "07:00", "days": 7},
    "mail": {"host": "", "port": 0, "security": "starttls", "user": "", "password_file": "", "sender": "",
             "recipients": [], "summary": "07:00", "ca_file": ""},
    "webhook": {"url": ""},
}


def _read_file(path: Path) -> tuple[dict, str]:
    """The parsed file and its text (for the line numbers of errors)."""
    import tomllib  # here, not at the top: every `tapeline` client loads this module, one with --data reads no file

    try:
        with open(path, "rb") as f:
            data = f.read()
        return tomllib.loads(data.decode("utf-8", "replace")), data.decode("utf-8", "replace")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist",
                          "create it (see etc/tapeline.toml) or leave out --config") from None
    except PermissionError:
        raise ConfigError(f"cannot read configuration file {path}",
                          "run as root or a member of the operators' group, or pass --data DIR") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})", "fix the line it names") from None


_TABLE_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_KEY_RE = re.compile(r"^\s*(?:\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_\-]+))\s*=")


def key_lines(text: str) -> dict[str, int]:
    """{"section.key" (or "section" for a table header, "key" at the top): line number} of a TOML file's text. A
    key whose line cannot be told (an inline table) is left out: errors then name the file alone."""
    lines: dict[str, int] = {}
    section = ""
    for n, line in enumerate(text.splitlines(), 1):
        if m := _TABLE_RE.match(line):
            section = m.group(1).strip("\"' ")
            lines.setdefault(section, n)
        elif m := _KEY_RE.match(line):
            key = next(g for g in m.groups() if g is not None)
            lines.setdefault(f"{section}.{key}" if section else key, n)
    return lines


def _valid_keys(section: str, wrong: str) -> str:
    """What the section takes, with the nearest key first when the wrong one looks like a typo of it."""
    import difflib

    names = [k for k in KEYS[section] if section or k not in KEYS]
    near = difflib.get_close_matches(wrong, names, n=1)
    shown = ", ".join(names)
    where = f"[{section}]" if section else "the top level"
    return f"did you mean {near[0]}? {where} takes {shown}" if near else f"{where} takes {shown}"


def _flatten(raw: dict, path: Path | str, lines: dict[str, int] | None = None) -> dict[str, object]:
    """{"section.key": value} for every key, refusing unknown sections and keys so that typos do not pass silently:
    one line naming the key, its line in the file, and the keys that are valid there."""
    lines = lines or {}

    def at(name: str) -> str:
        return f"{path} line {lines[name]}" if name in lines else str(path)

    flat: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in KEYS or key == "":
                import difflib

                near = difflib.get_close_matches(key, [s for s in KEYS if s], n=1)
                raise ConfigError(f"{at(key)}: unknown section [{key}]",
                                  f"remove it or correct it; {'did you mean [' + near[0] + ']? ' if near else ''}"
                                  f"sections are {', '.join('[' + s + ']' for s in KEYS if s)}")
            for sub, v in value.items():
                if sub not in KEYS[key]:
                    raise ConfigError(f"{at(key + '.' + sub)}: unknown key {key}.{sub}",
                                      f"remove it or correct it; {_valid_keys(key, sub)}")
                flat[f"{key}.{sub}"] = v
        elif key in KEYS[""]:
            flat[key] = value
        else:
            raise ConfigError(f"{at(key)}: unknown key {key}",
                              f"remove it or correct it; {_valid_keys('', key)}, then the sections "
                              f"{', '.join('[' + s + ']' for s in KEYS if s)}")
    return flat


def load(config_file: str | Path | None = None, data_dir: str | Path | None = None,
         environ: dict[str, str] | None = None, read_default_file: bool = True, client: bool = False) -> Settings:
    """Resolve the settings. `data_dir` (from --data) wins over TAPELINE_DATA, which wins over the file's data_dir.
    `read_default_file=False` ignores /etc/tapeline/tapeline.toml (`tapeline up`: embedded defaults).
    `client=True` (a command's client, which never mails) leaves the mail section to the daemon, which checks it at
    start: its addresses' check imports the email package, ~10-24 ms of every command; `mail` is then None."""
    env = os.environ if environ is None else environ
    source: Path | str = "defaults"
    raw: dict[str, object] = {}
    if config_file is not None:
        source = Path(config_file)
    elif read_default_file and DEFAULT_CONFIG_FILE.exists() and data_dir is None and not env.get("TAPELINE_DATA"):
        source = DEFAULT_CONFIG_FILE
    lines: dict[str, int] = {}
    if isinstance(source, Path):
        parsed, text = _read_file(source)
        lines = key_lines(text)
        raw = _flatten(parsed, source, lines)

    def at(key: str) -> str:
        """Where a bad value is: the file and the key's line."""
        return f"{source} line {lines[key]}" if key in lines else str(source)

    def get(key: str):
        section, _, name = key.rpartition(".")
        return raw.get(key, KEYS[section][name])

    dev_dir = data_dir if data_dir is not None else env.get("TAPELINE_DATA") or None
    development = dev_dir is not None
    data = Path(dev_dir if development else str(get("data_dir"))).expanduser()
    if not str(data):
        raise ConfigError(f"{at('data_dir')}: data_dir is empty", "set it to a directory, e.g. /var/lib/tapeline")
    data = data.absolute()

    def path_key(key: str, default: Path) -> Path:
        value = get(key)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{at(key)}: {key} must be a path string", f'write it as {key.rpartition(".")[2]} = "/path"')
        p = Path(value).expanduser()
        return p if p.is_absolute() else data / p

    url = get("catalog.url")
    if url in (None, ""):
        url = f"sqlite:///{data / 'catalog.sqlite'}"
    elif not isinstance(url, str) or not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(f"{at('catalog.url')}: catalog.url {url!r} is not a catalog URL",
                          'use "sqlite:////path/catalog.sqlite" or "postgresql+psycopg://user@host/db"')
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]

    socket_default = data / "run" / "tapeline.sock" if development else SERVICE_SOCKET
    socket_path = socket_default if development and "api.socket" not in raw else path_key("api.socket", socket_default)

    group = get("api.group")
    if not isinstance(group, str) or not group:
        raise ConfigError(f"{at('api.group')}: api.group must be a group name", 'write it as group = "tapeline"')

    try:
        sync_seconds = parse_duration(get("defaults.sync"))
    except ValueError:
        raise ConfigError(f"{at('defaults.sync')}: defaults.sync {get('defaults.sync')!r} is not a duration",
                          'write it as sync = "15m" (s, m, h, d, w)') from None
    try:
        keep_seconds = parse_duration(get("defaults.keep"))
    except ValueError:
        raise ConfigError(f"{at('defaults.keep')}: defaults.keep {get('defaults.keep')!r} is not a duration",
                          'write it as keep = "12d" (s, m, h, d, w)') from None
    try:
        points = parse_times(get("defaults.points"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{at('defaults.points')}: defaults.points has a bad time {exc}",
                          'write it as points = ["08:00", "11:00", "14:00", "17:00", "20:00"]') from None

    level = str(get("log.level")).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{at('log.level')}: log.level {get('log.level')!r} is not a level",
                          f"use one of {', '.join(LOG_LEVELS)}")
    workers = get("jobs.workers")
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise ConfigError(f"{at('jobs.workers')}: jobs.workers {workers!r} is not a worker count", "write it as workers = 2 (1-64)")

    syncs = get("jobs.syncs")
    if not isinstance(syncs, int) or isinstance(syncs, bool) or not 1 <= syncs <= 64:
        raise ConfigError(f"{at('jobs.syncs')}: jobs.syncs {syncs!r} is not a count", "write it as syncs = 2 (1-64)")
    retries = get("jobs.retries")
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
        raise ConfigError(f"{at('jobs.retries')}: jobs.retries {retries!r} is not a count",
                          "write it as retries = 3 (0-20; 0: no retry)")
    durations = {}
    for key, example in (("jobs.retry_delay", "1m"), ("jobs.keep_history", "90d")):
        try:
            durations[key] = parse_duration(get(key))
        except ValueError:
            raise ConfigError(f"{at(key)}: {key} {get(key)!r} is not a duration",
                              f'write it as {key.partition(".")[2]} = "{example}" (s, m, h, d, w)') from None

    listen = get("vtl.listen")
    if not isinstance(listen, str) or listen.rpartition(":")[0] == "" or not listen.rpartition(":")[2].isdigit():
        raise ConfigError(f"{at('vtl.listen')}: vtl.listen {listen!r} is not HOST:PORT", 'write it as listen = "127.0.0.1:7101"')

    block_size = get("media.block_size")
    if (not isinstance(block_size, int) or isinstance(block_size, bool) or not 4096 <= block_size <= 8 * 1024 * 1024
            or block_size % 4096):
        raise ConfigError(f"{at('media.block_size')}: media.block_size {block_size!r} is not a tape block size",
                          "write it as block_size = 262144 (a multiple of 4096, from 4 KiB to 8 MiB)")
    try:
        reuse_delay = 0 if str(get("media.reuse_delay")).strip() in ("0", "0s") else parse_duration(
            get("media.reuse_delay"))
    except ValueError:
        raise ConfigError(f"{at('media.reuse_delay')}: media.reuse_delay {get('media.reuse_delay')!r} is not a duration",
                          'write it as reuse_delay = "7d" (s, m, h, d, w; "0" for none)') from None
    failures = get("media.drive_failures")
    if not isinstance(failures, int) or isinstance(failures, bool) or not 1 <= failures <= 100:
        raise ConfigError(f"{at('media.drive_failures')}: media.drive_failures {failures!r} is not a count",
                          "write it as drive_failures = 3 (1-100)")

    metrics = get("metrics.listen")
    host, _, port = metrics.rpartition(":") if isinstance(metrics, str) else ("", "", "")
    if not isinstance(metrics, str) or metrics and (not host or not port.isdigit() or int(port) > 65535):
        raise ConfigError(f"{at('metrics.listen')}: metrics.listen {metrics!r} is not HOST:PORT",
                          'write it as listen = "127.0.0.1:9464", or listen = "" for no metrics')

    report_mail = get("reports.mail")
    if not isinstance(report_mail, list) or not all(isinstance(n, str) and n for n in report_mail):
        raise ConfigError(f"{at('reports.mail')}: reports.mail {report_mail!r} is not a list of report names",
                          'write it as mail = ["protection", "jobs"] (`tapeline report list` names them)')
    mail_at = get("reports.mail_at")
    try:
        mail_at_times = parse_times(mail_at) if isinstance(mail_at, str) else ()
    except ValueError:
        mail_at_times = ()
    if len(mail_at_times) != 1:
        raise ConfigError(f"{at('reports.mail_at')}: reports.mail_at {mail_at!r} is not a time",
                          'write it as mail_at = "07:00" (HH:MM, local time)')
    report_days = get("reports.days")
    if not isinstance(report_days, int) or isinstance(report_days, bool) or not 1 <= report_days <= 3660:
        raise ConfigError(f"{at('reports.days')}: reports.days {report_days!r} is not a number of days",
                          "write it as days = 7 (1-3660)")

    return Settings(
        data_dir=data,
        catalog_url=url,
        socket_path=socket_path,
        operators_group=group,
        store_path=path_key("store.path", data / "store"),
        sync_seconds=sync_seconds,
        point_times=points,
        keep_seconds=keep_seconds,
        log_level=level,
        workers=workers,
        vtl_dir=path_key("vtl.dir", data / "vtl"),
        vtl_listen=listen,
        config_file=Path(source) if isinstance(source, Path) else None,
        development=development,
        media_block_size=block_size,
        reuse_delay_seconds=reuse_delay,
        drive_failures=failures,
        syncs=syncs,
        retries=retries,
        retry_delay_seconds=durations["jobs.retry_delay"],
        keep_history_seconds=durations["jobs.keep_history"],
        metrics_listen=metrics,
        report_mail=tuple(dict.fromkeys(report_mail)),
        report_mail_at=mail_at_times[0],
        report_days=report_days,
        mail=None if client else _mail(get, at, path_key),
        webhook_url=_webhook(get("webhook.url"), at),
    )


def _address(value) -> str:
    """The address part of "Name <user@host>" or "user@host", or "" when it is not one."""
    from email.utils import parseaddr  # only with mail on: the email package costs every client ~10 ms

    addr = parseaddr(value)[1] if isinstance(value, str) else ""
    return addr if "@" in addr.strip("@") and not any(c.isspace() for c in addr) else ""


def _mail(get, at, path_key) -> MailSettings | None:
    host = get("mail.host")
    if not isinstance(host, str):
        raise ConfigError(f"{at('mail.host')}: mail.host must be a host name", 'write it as host = "smtp.example.com"')
    security = get("mail.security")
    if security not in MAIL_SECURITY:
        raise ConfigError(f"{at('mail.security')}: mail.security {security!r} is not a mail security",
                          f"use one of {', '.join(MAIL_SECURITY)}")
    port = get("mail.port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"{at('mail.port')}: mail.port {port!r} is not a port",
                          "write it as port = 587 (0: the standard port of mail.security)")
    if not host:
        return None
    sender, recipients, user = get("mail.sender"), get("mail.recipients"), get("mail.user")
    if not _address(sender):
        raise ConfigError(f"{at('mail.sender')}: mail.sender {sender!r} is not a mail address",
                          'write it as sender = "tapeline@example.com" (mail.host is set, so mail is on)')
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        raise ConfigError(f"{at('mail.recipients')}: mail.recipients is empty",
                          'write it as recipients = ["backup-team@example.com"] (mail.host is set, so mail is on)')
    for r in recipients:
        if not _address(r):
            raise ConfigError(f"{at('mail.recipients')}: mail.recipients has {r!r}, not a mail address",
                              'write it as recipients = ["backup-team@example.com"]')
    if not isinstance(user, str):
        raise ConfigError(f"{at('mail.user')}: mail.user must be a user name", 'write it as user = "tapeline"')
    password_file = path_key("mail.password_file", None)
    if user and password_file is None:
        raise ConfigError(f"{at('mail.user')}: mail.user is set but mail.password_file is empty",
                          'write the password in a file only the daemon reads and name it: password_file = '
                          '"/etc/tapeline/mail-password"')
    if password_file is not None and not user:
        raise ConfigError(f"{at('mail.password_file')}: mail.password_file is set but mail.user is empty",
                          'write the user name the server expects: user = "tapeline"')
    summary = get("mail.summary")
    try:
        times = parse_times(summary) if summary else ()
        if len(times) > 1 or not isinstance(summary, str):
            raise ValueError(summary)
    except (ValueError, TypeError):
        raise ConfigError(f"{at('mail.summary')}: mail.summary {summary!r} is not a time of day",
                          'write it as summary = "07:00" (empty: no daily summary)') from None
    return MailSettings(host=host, port=port or MAIL_SECURITY[security], security=security, user=user,
                        password_file=password_file, sender=sender, recipients=tuple(recipients),
                        summary=times[0] if times else None, ca_file=path_key("mail.ca_file", None))


def _webhook(url, at) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or (url and (parts.scheme not in ("http", "https") or not parts.hostname)):
        raise ConfigError(f"{at('webhook.url')}: webhook.url {url!r} is not an http(s) URL",
                          'write it as url = "https://chat.example.com/hooks/XYZ" (empty: no webhook)')
    return url


def parse_duration_option(name: str, value: str) -> int:
    """A duration given on the command line or the API, as a UsageError naming the option when bad."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        if str(exc) == TOO_LONG:
            raise UsageError(f"{name} {value!r} is {TOO_LONG}", "give a shorter duration, e.g. 90d or 52w") from None
        raise UsageError(f"{name} {value!r} is not a duration", "write it as 15m, 1h, 12d (s, m, h, d, w)") from None


def parse_times_option(name: str, value: str | list) -> tuple[str, ...]:
    try:
        return parse_times(value)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{name} has a bad time {exc}", "write times as HH:MM separated by commas, e.g. 08:00,20:00") from None
