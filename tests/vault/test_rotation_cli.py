"""The vault commands as an operator runs them, through the real daemon (`tapeline up`, its embedded library):
vaults, a pool's rotation policy, the dry run, and the one-line refusals of a receipt that disagrees."""

from __future__ import annotations


import pytest

from tests.appliance.daemon_harness import start_up, stop_up


@pytest.fixture
def up(tmp_path):
    """`tapeline up`: the daemon, its embedded simulator registered as library `vtl`, and the `demo` group."""
    d = start_up(tmp_path)
    yield d
    stop_up(d)


def test_vaults_and_a_pools_rotation_policy(up):
    created = up.json("vault", "create", "ironvault", "--contact", "+1 555 0100")
    assert (created["name"], created["contact"]) == ("ironvault", "+1 555 0100")
    assert [v["name"] for v in up.json("vault", "list")] == ["ironvault"]
    up.run("pool", "create", "weekly", "--library", "vtl", "--retention", "30d", "--allocation", "always")
    policy = up.json("pool", "set", "weekly", "--vault", "ironvault", "--offsite-copies", "2", "--recall",
                     "Fri 10:00", "--gfs", "daily=7d,weekly=5w,monthly=12m,yearly=7y", "--check-sample", "2",
                     "--check-every", "90d")
    assert (policy["vault"], policy["offsite_copies"], policy["recall"]) == ("ironvault", 2, "Fri 10:00")
    assert policy["gfs"]["weekly"] == 35 * 86400 and policy["check_every_seconds"] == 90 * 86400
    shown = up.run("vault", "policy", "weekly").stdout
    assert "pool weekly: to vault ironvault" in shown and "daily=7d, weekly=35d" in shown
    assert "2 cartridges read back every 90d" in shown
    assert up.run("vault", "show", "ironvault").stdout.startswith("vault ironvault (+1 555 0100)")
    assert up.run("vault", "recall").stdout.strip() == "nothing is due back"
    assert "nothing is offsite-ready" in up.run("vault", "ready").stdout
    dry = up.run("vault", "dry-run", "weekly", "--retention", "1d").stdout
    assert "(nothing was changed)" in dry and "no recovery point would be lost" in dry


def test_bad_input_is_one_line_naming_the_cause_and_the_fix(up):
    up.run("vault", "create", "ironvault")
    up.run("pool", "create", "weekly", "--library", "vtl")
    proc = up.run("vault", "receive", "A00000L8", "--vault", "ironvault", check=1)
    assert proc.stderr.splitlines()[0].startswith(
        "tapeline: receipt from vault ironvault: 1 discrepancy: A00000L8 was never sent (it is mountable, slot")
    assert "--skip" in proc.stderr.splitlines()[0]
    alerts = up.json("alerts")
    assert any("A00000L8 was never sent" in a["message"] for a in alerts)
    err = up.json("vault", "receive", "A00000L8", "A00000L8", "--vault", "ironvault", check=1)
    assert set(err) == {"error", "fix", "exit_code", "type"} and "A00000L8 given twice" in err["error"]
    proc = up.run("vault", "receive", "A00000L8", "--vault", "nowhere", check=1)
    assert proc.stderr.splitlines()[0] == ("tapeline: vault 'nowhere' does not exist: known: ironvault "
                                           "(`tapeline vault list`)")
    proc = up.run("pool", "set", "weekly", "--gfs", "hourly=1d", check=2)
    assert "--gfs item 'hourly=1d' is not TIER=DURATION" in proc.stderr.splitlines()[0]
    proc = up.run("pool", "set", "weekly", "--recall", "sometimes", check=2)
    assert "--recall 'sometimes' is not a calendar event" in proc.stderr.splitlines()[0]
    proc = up.run("pool", "set", "weekly", "--offsite-copies", "0", check=2)
    assert proc.stderr.splitlines()[0].startswith("tapeline: ")
    proc = up.run("vault", "recall", "A00000L8", check=1)
    assert "A00000L8 is not in a vault (it is mountable)" in proc.stderr.splitlines()[0]
