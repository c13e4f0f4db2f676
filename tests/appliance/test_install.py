"""scripts/install puts the project, its account, the configuration and the enabled units in place: run for real into
a scratch root (`--root DIR`, as when building an image), the only way CI can run it without changing the machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from appliance import config

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install"


def run_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=900)


def base_system(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nusers:x:100:\n")
    return root


def test_bad_usage_is_one_line_with_the_fix(tmp_path):
    run = run_install("--bogus")
    assert run.returncode == 2
    assert run.stderr == "install: no such option '--bogus': see scripts/install --help\n"
    run = run_install("--root", str(tmp_path / "missing"))
    assert run.returncode == 2 and "is not a directory: create it first" in run.stderr
    run = run_install("--root", str(tmp_path))
    assert run.returncode == 2 and f"{tmp_path}/etc/passwd does not exist" in run.stderr
    assert list(tmp_path.iterdir()) == []  # refused before it wrote anything


def test_refuses_without_root(tmp_path):
    if os.getuid() != 0:
        run = run_install("--root", str(base_system(tmp_path / "root")))
    else:  # the same run as nobody, from a copy nobody can read (a clone may sit in a 0700 directory)
        readable = Path(tempfile.mkdtemp())
        try:
            readable.chmod(0o755)
            script = readable / "install"
            shutil.copy(INSTALL, script)
            script.chmod(0o755)
            run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(script)],
                                 capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(readable)
    assert run.returncode == 1
    assert run.stderr.startswith("install: must run as root") and run.stderr.rstrip().endswith("sudo scripts/install")


@pytest.mark.slow
def test_installs_into_a_root_and_again_keeps_the_configuration(tmp_path):
    assert os.getuid() == 0, "the installer runs as root: run this test as root (CI does)"
    root = base_system(tmp_path / "root")
    run = run_install("--root", str(root))
    assert run.returncode == 0, run.stderr

    passwd = (root / "etc/passwd").read_text().splitlines()
    groups = (root / "etc/group").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("tapeline:"))
    gid = next(int(line.split(":")[2]) for line in groups if line.startswith("tapeline:"))
    assert int(user[3]) == gid and user[5] == "/var/lib/tapeline" and user[6] == "/usr/sbin/nologin"
    assert int(user[2]) < 1000  # a system account

    # The configuration: the documented defaults, readable by root and the operators' group only.
    conf = root / "etc/tapeline/tapeline.toml"
    assert conf.read_text() == (REPO / "etc/tapeline.toml").read_text()
    st = conf.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640)
    assert (root / "etc/tapeline").stat().st_mode & 0o777 == 0o750
    settings = config.load(conf, environ={})
    assert settings.data_dir == Path("/var/lib/tapeline") and settings.operators_group == "tapeline"

    # The project: a copy (not this checkout's editable install) whose scripts name /opt/tapeline.
    opt = root / "opt/tapeline"
    python = opt / "bin/python"
    where = subprocess.run([str(python), "-c", "import appliance; print(appliance.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(opt / "lib"))
    for program in ("tapeline", "tapeline-vtl", "tapeline-mtx", "tapeline-mt"):
        assert (opt / "bin" / program).read_text().splitlines()[0] == "#!/opt/tapeline/bin/python"
        assert os.readlink(root / "usr/local/bin" / program) == f"/opt/tapeline/bin/{program}"
    shown = subprocess.run([str(python), str(opt / "bin/tapeline"), "plan", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--size" in shown.stdout
    assert (root / "usr/share/doc/tapeline/configuration.md").is_file()  # the units' Documentation=

    # The units: enabled as systemctl does (the library only with --vtl), and checked as installed.
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == ["tapeline.service"]
    assert os.readlink(wants / "tapeline.service") == "/etc/systemd/system/tapeline.service"
    for name, program in (("tapeline.service", "tapeline"), ("tapeline-vtl.service", "tapeline-vtl")):
        installed = (root / "etc/systemd/system" / name).read_text()
        assert installed == (REPO / "systemd" / name).read_text()
        local = tmp_path / name
        local.write_text(installed.replace(f"/opt/tapeline/bin/{program}", str(opt / "bin" / program)))
        check = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
        assert (check.returncode, check.stderr) == (0, "")

    # Again, with the library and an operator's edit: the edit stays, the account is not added twice.
    conf.write_text(conf.read_text().replace('level = "info"', 'level = "debug"'))
    run = run_install("--root", str(root), "--vtl")
    assert run.returncode == 0, run.stderr
    assert "kept /etc/tapeline/tapeline.toml" in run.stderr
    assert 'level = "debug"' in conf.read_text()
    assert sum(line.startswith("tapeline:") for line in (root / "etc/passwd").read_text().splitlines()) == 1
    assert sorted(p.name for p in wants.iterdir()) == ["tapeline-vtl.service", "tapeline.service"]
