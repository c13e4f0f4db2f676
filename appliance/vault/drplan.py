"""The disaster recovery plan (`tapeline vault plan`) and the catalog backup that travels with each offsite batch.

As DRM's PREPARE: one dated document that says how to rebuild this site from its tapes: which cartridges hold the
newest catalog backup and the newest set of each group (where each is: vault, case, slot), the configuration, and
the commands in order.

Invariants:
- The catalog backup is a direct (D2T) set of the reserved group `DR_GROUP` (a name no protection group can take:
  group names start with a letter or digit), written by the tape backup job's own code (media/tape_backup.py) into
  the pool's current media set, so it is verified as any set and `media rebuild` reads it back like the others.
  It holds a consistent snapshot of the catalog (SQLite: the online backup API, while the daemon runs; PostgreSQL:
  `pg_dump --format=custom`) and the configuration file, staged under the data directory first.
- The plan is plain Markdown, dated in its name and its first line, written into `DATA/dr/` with each export batch;
  `plan-latest.md` is always the newest one. It names cartridges by barcode and says where the catalog has them now.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlmodel import select

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.models import Cartridge, MediaCase, Pool, Vault
from appliance.catalog.moves import SHOWN, where
from appliance.errors import TapelineError
from appliance.media.tape_backup import backup

DR_GROUP = tape_sets.DR_GROUP  # the reserved group of the catalog backups
PLAN_DIR = "dr"
LATEST = "plan-latest.md"


@dataclass(frozen=True)
class Source:
    path: str


@dataclass(frozen=True)
class ReservedGroup:
    """What tape_backup.backup needs of a group, for the catalog backup's reserved one."""

    id: None
    name: str
    sources: tuple[Source, ...]


# --- the catalog backup -------------------------------------------------------------------------------------------


def stage(settings, catalog_url: str) -> Path:
    """The catalog snapshot and the configuration file, in a fresh `DATA/dr/staged/`: what the catalog set holds."""
    staged = Path(settings.data_dir) / PLAN_DIR / "staged"
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True, mode=0o700)
    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
        target = sqlite3.connect(staged / "catalog.sqlite")
        try:
            source.backup(target)  # a consistent copy while the daemon writes (the online backup API)
        finally:
            target.close()
            source.close()
    else:
        dump = staged / "catalog.pgdump"
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", libpq], check=True,
                           capture_output=True, text=True, timeout=3600)
        except FileNotFoundError:
            raise TapelineError("pg_dump is not installed: the PostgreSQL catalog cannot be backed up to tape",
                                "install the PostgreSQL client (apt-get install postgresql-client)") from None
        except subprocess.CalledProcessError as exc:
            raise TapelineError(f"pg_dump of the catalog failed: {exc.stderr.strip().splitlines()[-1:]}",
                                "check that the catalog database answers (`tapeline status`)") from None
    config = getattr(settings, "config_file", None)
    if config is not None and Path(config).is_file():
        shutil.copy2(config, staged / "tapeline.toml")
    else:
        (staged / "tapeline.toml").write_text("# this appliance ran on its built-in defaults (no configuration "
                                              "file)\n")
    return staged


# --- the plan -----------------------------------------------------------------------------------------------------


def _located(catalog, barcodes: set[str]) -> dict[str, str]:
    """'B (vault V, case C)' / 'B (slot 4)' for each barcode, from the catalog as it is now (one query)."""
    wanted = sorted(barcodes)
    with catalog.reader() as s:
        vaults = {v.id: v.name for v in s.exec(select(Vault)).all()}
        cases = {c.id: c.number for c in s.exec(select(MediaCase)).all()}
        carts = {c.barcode: c for c in cat.cartridges_in(s, Cartridge.barcode, wanted)}
    shown = {}
    for barcode in wanted:
        cart = carts.get(barcode)
        if cart is None:
            shown[barcode] = f"{barcode} (unknown to the catalog)"
            continue
        place = where(cart, vaults.get(cart.vault_id))
        extra = f", case {cases[cart.case_id]}" if cart.case_id in cases else ""
        state = "" if cart.rotation == "mountable" else f", {SHOWN[cart.rotation]}"
        shown[barcode] = f"{barcode} ({place}{extra}{state})"
    return shown


def newest_sets(catalog) -> tuple[tape_sets.SetInfo | None, dict[str, list[tape_sets.SetInfo]]]:
    """The newest catalog backup, and for each group the sets its newest good set needs (tape_sets.chain: itself
    and its bases, the full first; a base no longer good is named with its state, never dropped)."""
    newest = {s.group: s for s in tape_sets.newest_good(catalog)}
    dr = newest.pop(DR_GROUP, None)
    return dr, {group: tape_sets.chain(catalog, s) for group, s in sorted(newest.items())}


def build(catalog, settings, now: datetime) -> str:
    """The plan's text (Markdown)."""
    dr, groups = newest_sets(catalog)
    located = _located(catalog, {p.barcode for st in ([dr] if dr else []) + [x for c in groups.values() for x in c]
                                 for p in st.parts})

    def on(st: tape_sets.SetInfo) -> str:
        return ", ".join(located[p.barcode] for p in st.parts)
    libraries = cat.list_libraries(catalog)
    lines = [f"# Tapeline disaster recovery plan, {now:%Y-%m-%d %H:%M} UTC", "",
             f"Appliance {socket.gethostname()}, data directory {settings.data_dir}. Written {now.isoformat()}; "
             "the newest plan is the one to follow (`tapeline vault plan` prints it; one travels with each "
             "offsite batch).", "", "## 1. The catalog and configuration backup", ""]
    if dr is None:
        lines += ["No catalog backup on tape yet: `tapeline vault export` writes one before each batch.", ""]
    else:
        lines += [f"Tape set {dr.id} of group `{DR_GROUP}`, written {dr.created:%Y-%m-%d %H:%M} UTC in pool "
                  f"{dr.pool}, on: {on(dr)}.",
                  "It holds the catalog (`catalog.sqlite`, or `catalog.pgdump` for PostgreSQL) and the "
                  "configuration file (`tapeline.toml`).", ""]
    lines += ["## 2. The newest set of each group", ""]
    if not groups:
        lines += ["No group has a set on tape.", ""]
    for group, chain in groups.items():
        newest = chain[-1]
        lines.append(f"- **{group}**: set {newest.id} ({newest.kind}, {newest.created:%Y-%m-%d %H:%M} UTC, "
                     f"pool {newest.pool}, {newest.files} files)")
        for s in chain:
            state = "" if s.state == "ok" else f", {s.state}: a restore refuses to read from it"
            role = "" if s is newest else f"base set {s.id} ({s.kind}{state}): "
            lines.append(f"  - {role}{on(s)}")
    lines += ["", "## 3. Configuration", ""]
    with catalog.reader() as s:
        vaults = {v.id: v for v in s.exec(select(Vault)).all()}
        pools = list(s.exec(select(Pool).order_by(Pool.name)).all())
    for lib in libraries:
        lines.append(f"- library **{lib.name}**: changer {lib.changer_url}, drives {' '.join(lib.drive_urls)}")
    for pool in pools:
        vault = vaults.get(pool.vault_id)
        lines.append(f"- pool **{pool.name}**: retention "
                     f"{'forever' if pool.retention_seconds is None else f'{pool.retention_seconds // 86400}d'}, "
                     f"allocation {pool.allocation}" + (", encrypted (key fingerprint "
                                                        f"{pool.key_fingerprint}: bring its key file)"
                                                        if pool.key_fingerprint else "")
                     + (f", offsite to vault {vault.name} ({vault.contact or 'no contact recorded'})" if vault else ""))
    config = getattr(settings, "config_file", None)
    if config is not None and Path(config).is_file():
        lines += ["", f"The configuration file ({config}):", "", "```toml", Path(config).read_text().rstrip(), "```"]
    lines += ["", "## 4. Commands, in order", ""]
    library = libraries[0] if libraries else None
    lib_name = library.name if library else "LIBRARY"
    steps = [
        "Install Tapeline on the new machine: `scripts/install` from its source tree (README, \"Install as a "
        "service\").",
        "Put the configuration above into `/etc/tapeline/tapeline.toml` (an empty data directory and an empty "
        "catalog), and the pools' key files where it names them; start the daemon (`systemctl start tapeline`).",
        f"Register the library: `tapeline library add {lib_name} CHANGER_URL DRIVE_URL...`"
        + (f" (here it was {library.changer_url} {' '.join(library.drive_urls)})" if library else "") + ".",
        "Have the vault send back the cartridges named in sections 1 and 2; put them into the mail slots and run "
        "`tapeline vault import --wait` (or into the slots, then `tapeline library inventory "
        f"{lib_name}`).",
        f"Read the tape catalog back from them: `tapeline media rebuild --library {lib_name} --wait`.",
        f"The catalog and configuration backup: `tapeline tape restore {DR_GROUP} --to /srv/restore/catalog "
        "--wait` (history, schedules, the pools' settings).",
    ]
    for group in groups:
        steps.append(f"Group {group}: `tapeline tape restore {group} --to /srv/restore/{group} --wait` (its newest "
                     "set; the cartridges it needs are asked for by barcode if one is missing).")
    steps.append("Re-create the groups on the restored data (`tapeline group create NAME --source DIR`) and their "
                 "tape schedules, as the restored catalog and configuration say.")
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines) + "\n"


def write(catalog, settings, now: datetime) -> Path:
    """Write the plan into `DATA/dr/` (dated, and as plan-latest.md); returns the dated file."""
    folder = Path(settings.data_dir) / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    text = build(catalog, settings, now)
    dated = folder / f"plan-{now:%Y%m%dT%H%M%SZ}.md"
    for path in (dated, folder / LATEST):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return dated


class _Step:
    """The export job's context with the parameters of one catalog backup (tape_backup.backup reads ctx.params)."""

    def __init__(self, ctx, params: dict):
        self._ctx, self.params = ctx, params

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def backup_catalog(ctx, store, media, cache, block_size: int, settings, pool: str):
    """Write the catalog and the configuration to `pool`'s current media set as a verified direct set of
    DR_GROUP; returns the tape backup's Outcome."""
    staged = stage(settings, settings.catalog_url)
    group = ReservedGroup(None, DR_GROUP, (Source(str(staged)),))
    return backup(_Step(ctx, {"pool": pool, "kind": "direct"}), store, media, cache, block_size, group=group)
