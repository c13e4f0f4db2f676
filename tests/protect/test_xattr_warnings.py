"""An extended attribute or ACL that a sync cannot read is a warning naming the file, never a silent loss.

The failure is real, not injected: a sync running as `nobody` lists the `user.` attribute of a root-owned
directory of mode 0711 (listing names needs no permission) but may not read its value (EACCES)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from appliance.protect.files import sync
from appliance.store import Store
from tests.protect.conftest import give_to_nobody, group_of

ROOT = Path(__file__).resolve().parents[2]
AS_NOBODY = (
    "import json, os\n"
    "from pathlib import Path\n"
    "from appliance.store import Store\n"
    "from appliance.protect.files import sync, GroupSpec, SourceSpec\n"
    "os.setgid(65534); os.setuid(65534)  # after the imports: the interpreter's files may be root's only\n"
    "s = Store.open(Path({store!r}))\n"
    "out = []\n"
    "for _ in range(2):\n"
    "    r = sync(s, GroupSpec('g', (SourceSpec({src!r}),)))\n"
    "    notes = {{e.path.decode(): [e.note, [n.decode() for n, _ in e.xattrs]] for e in s.entries(r.snapshot.id)}}\n"
    "    out.append([r.state, r.warnings, notes])\n"
    "print(json.dumps(out))\n"
)


def test_unreadable_xattr_is_a_warning_naming_the_file_at_every_sync(public_base):
    base = public_base
    (base / "src" / "locked").mkdir(parents=True)
    (base / "src" / "open.txt").write_text("anyone")
    os.setxattr(base / "src" / "locked", "user.origin", b"kept by the operator")
    os.chmod(base / "src" / "locked", 0o711)  # root's: nobody may pass through, not read
    Store.open(base / "store", create=True).close()
    give_to_nobody(base / "store")
    code = AS_NOBODY.format(store=str(base / "store"), src=str(base / "src"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    for state, warnings, notes in json.loads(run.stdout):  # the first sync and the next one alike
        assert state == "completed with warnings"
        assert any(f"{base}/src/locked: extended attributes or ACLs not read: user.origin (Permission denied)"
                   in w for w in warnings), warnings
        assert notes["locked"] == ["extended attributes not read", []]
        assert notes["open.txt"][0] is None


def test_readable_xattrs_are_recorded_without_warning(store, src):
    (src / "d").mkdir()
    os.setxattr(src / "d", "user.a", b"1")
    (src / "f").write_text("x")
    os.setxattr(src / "f", "user.b", b"2")
    result = sync(store, group_of(src))
    assert result.state == "completed", result.warnings
    xattrs = {e.path: dict(e.xattrs) for e in store.entries(result.snapshot.id)}
    assert xattrs[b"d"] == {b"user.a": b"1"} and xattrs[b"f"] == {b"user.b": b"2"}
