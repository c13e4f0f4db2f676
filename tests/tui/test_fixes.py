"""Which alert fixes the console runs itself (through the API) and which it shows to a person."""

from __future__ import annotations

from tui import fixes


class Calls:
    """Records what the console would ask the daemon (this test is about the mapping, not the daemon)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: (name, args, kwargs)


def test_the_commands_the_api_runs():
    d = Calls()
    assert fixes.runnable("tapeline sync web")(d) == ("sync", ("web",), {"accept_deletions": False})
    assert fixes.runnable("tapeline sync web --accept-deletions --wait")(d) == ("sync", ("web",),
                                                                              {"accept_deletions": True})
    assert fixes.runnable("tapeline check g --full")(d) == ("check", ("g",), {"full": True})
    assert fixes.runnable("tapeline group resume home")(d) == ("resume", ("home",), {})
    assert fixes.runnable("tapeline media rebuild --library vtl --wait")(d) == ("media_rebuild", ("vtl",), {})
    assert fixes.runnable("tapeline drive clean vtl 1")(d) == ("drive_action", ("vtl", 1, "clean"), {})
    assert fixes.runnable("tapeline mail test")(d) == ("mail_test", (), {})


def test_upper_case_names_are_names_not_placeholders():
    d = Calls()
    assert fixes.runnable("tapeline sync HR")(d) == ("sync", ("HR",), {"accept_deletions": False})
    assert fixes.runnable("tapeline media verify VT0001L6")(d) == ("media_verify", ("VT0001L6",), {})
    assert fixes.runnable("tapeline library inventory LIB1")(d) == ("inventory", ("LIB1",), {})


def test_placeholders_and_unknown_commands_are_shown_instead():
    for command in ("tapeline tape backup web --pool POOL", "tapeline media rebuild --library LIB",
                    "tapeline media verify BARCODE", "tapeline sync NAME --wait", "tapeline alerts ack ID",
                    "tapeline group show web", "tapeline alerts --all", "tapeline sync web --bogus",
                    "tapeline sync 'unclosed"):
        assert fixes.runnable(command) is None, command


def test_the_commands_quoted_in_a_fix():
    fix = "mount it or fix the path (`tapeline group show web`), then rerun it with `tapeline sync web`"
    assert fixes.commands(fix) == ["tapeline group show web", "tapeline sync web"]
    assert fixes.commands("") == []
