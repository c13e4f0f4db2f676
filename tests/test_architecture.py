"""The layers of ARCHITECTURE.md, enforced: import-linter contracts (pyproject.toml), the completeness of its two allow
lists, and a fresh-interpreter check."""

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the simulator may import from the drivers (docs/ARCHITECTURE.md says why each departure from drivers.scsi
# alone): the codecs, the transport interface its `local` transport implements, the stream protocol and token its
# server speaks, the error types and the tools' EPIPE handling. Everything else of drivers/ is forbidden.
SIMULATOR_MAY_IMPORT = {"drivers.scsi", "drivers.transport.base", "drivers.transport.frames",
                        "drivers.transport.token", "drivers.errors", "drivers.console"}
# The console reaches the appliance through its API client only (and the errors the client raises), writes sizes
# and intervals in the CLI's words (appliance.text) and its exports as the CLI does (appliance.files): those two
# import nothing of the appliance.
STANDALONE = {"appliance.text", "appliance.files"}
CONSOLE_MAY_IMPORT = {"appliance.api.client", "appliance.errors", *STANDALONE}
ALLOW_LISTS = {  # contract name prefix -> (the package its forbidden list must cover, the allow list)
    "The simulator imports only its allow list": ("drivers", SIMULATOR_MAY_IMPORT),
    "The console imports only the API client": ("appliance", CONSOLE_MAY_IMPORT),
    "appliance.text and appliance.files import nothing of the appliance": ("appliance", STANDALONE),
}


def _contract(prefix: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"].startswith(prefix)]
    assert len(found) == 1, f"one contract named {prefix!r} in pyproject.toml"
    return found[0]


def _within(module: str, packages: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("prefix", sorted(ALLOW_LISTS))
def test_allow_lists_cover_every_module(prefix):
    """A forbidden contract is an allow list only if every other module is in it: a module added to the package
    must be allowed here or forbidden in pyproject.toml, never silently importable."""
    package, allowed = ALLOW_LISTS[prefix]
    forbidden = set(_contract(prefix)["forbidden_modules"])
    assert not {m for m in forbidden if _within(m, allowed) or any(_within(a, {m}) for a in allowed)}, \
        "a module is both allowed and forbidden"
    graph = grimp.build_graph(package)
    containers = {a.rsplit(".", n)[0] for a in allowed for n in range(1, a.count(".") + 1)}  # empty __init__ files
    loose = sorted(m for m in graph.modules
                   if not _within(m, allowed) and not _within(m, forbidden) and m not in containers)
    assert loose == [], f"{prefix}: allow these in tests/test_architecture.py or forbid them in pyproject.toml"


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_core_packages_never_load_textual():
    code = (
        "import sys, pkgutil, importlib\n"
        "for pkg in ('appliance', 'drivers', 'simulators'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('textual' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
