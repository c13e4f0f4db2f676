"""Every error the API and `--json` report names its fix, and exceptions from outside the hierarchy (the engine's
SyncRefused, the drivers' DeviceError family, a bug) map to an exit code, an HTTP status and a fix in one place."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import appliance
from appliance.errors import (EXIT_FAILED, EXIT_USAGE, Conflict, JobFailed, NotFound, TapelineError, Unavailable,
                              UsageError, as_error)

ROOT = Path(appliance.__file__).parent


def _all_error_classes() -> list[type[TapelineError]]:
    for mod in pkgutil.walk_packages([str(ROOT)], "appliance."):
        importlib.import_module(mod.name)
    seen, todo = [], [TapelineError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo += cls.__subclasses__()
    return seen


def test_every_raise_in_the_appliance_gives_a_fix():
    """Each construction of an error class in the appliance's code passes a fix where the class takes one."""
    takes_fix = {cls.__name__ for cls in _all_error_classes() if "fix" in inspect.signature(cls.__init__).parameters}
    missing = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in takes_fix
                    and len(node.args) < 2 and not any(k.arg == "fix" for k in node.keywords)):
                missing.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.func.id}")
    assert missing == []


def _sample(param: inspect.Parameter):
    return {"digest": b"\x12" * 32, "root": Path("/var/lib/tapeline/store")}.get(param.name, "x")


def test_every_error_class_with_its_own_message_carries_a_fix():
    """The classes that build their message themselves (the store's damage errors among them) give a fix too, and
    their payload is the documented shape."""
    checked = 0
    for cls in _all_error_classes():
        init = vars(cls).get("__init__")
        if init is None:
            continue
        params = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
        if [p.name for p in params][:2] == ["message", "fix"]:
            err = cls("something failed", "do this")
        else:
            err = cls(*(_sample(p) for p in params if p.default is inspect.Parameter.empty))
        payload = err.to_payload()
        assert set(payload) == {"error", "fix", "exit_code", "type"}
        assert payload["fix"] and payload["error"] and ": " not in payload["fix"][:2], (cls, payload)
        assert not payload["error"].endswith(payload["fix"]), (cls, payload)  # the fix is not only in the message
        checked += 1
    assert checked >= 7


def test_a_sync_refusal_and_device_errors_map_to_exit_codes_and_fixes():
    from appliance.protect.scan import SyncCancelled, SyncRefused
    from drivers.errors import DeviceBusy, DeviceNotFound, TransportError
    from drivers.mtx import MtxError
    from drivers.scsi.sense import NO_MEDIUM, error_for

    refused = as_error(SyncRefused("source /srv lost 90 of its 100 files since the last sync: check that it is "
                                   "mounted; if they were deleted, run `tapeline sync g --accept-deletions`"))
    assert isinstance(refused, Conflict) and refused.exit_code == EXIT_FAILED and refused.http_status == 409
    assert refused.message == "source /srv lost 90 of its 100 files since the last sync"
    assert refused.fix.startswith("check that it is mounted")
    assert isinstance(as_error(SyncCancelled("cancelled")), JobFailed)

    no_medium = as_error(error_for(NO_MEDIUM.sense(), "READ(6)", "/dev/nst0"))
    assert no_medium.fix == "load a cartridge" and "no medium present" in no_medium.message
    assert no_medium.exit_code == EXIT_FAILED and no_medium.http_status == 500
    assert isinstance(as_error(DeviceNotFound("no device at /dev/sg9")), NotFound)
    assert isinstance(as_error(DeviceBusy("the library directory is in use")), Conflict)
    for exc in (TransportError("socket closed"), MtxError("mtx: usage")):
        err = as_error(exc)
        assert type(err) is TapelineError and err.fix and err.exit_code == EXIT_FAILED

    bug = as_error(KeyError("boom"))
    assert bug.message == "KeyError: 'boom'" and "log" in bug.fix and bug.http_status == 500
    usage = UsageError("bad", "good")
    assert as_error(usage) is usage and usage.exit_code == EXIT_USAGE
    assert Unavailable("catalog full", "free space").http_status == 503


def test_the_cli_answers_a_time_at_the_calendar_start_in_one_line(tmp_path, capfd):
    from appliance.cli import main
    with pytest.raises(SystemExit) as ended:
        main(["--data", str(tmp_path), "restore", "g", "--to", str(tmp_path / "r"), "--at", "0001-01-01 00:00"])
    err = capfd.readouterr().err
    # Refused before any daemon is asked (none runs here), as bad usage, on one line.
    assert ended.value.code == EXIT_USAGE, err
    assert "Traceback" not in err and err.startswith("tapeline: --at ") and "out of range" in err
