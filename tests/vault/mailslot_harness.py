"""A simulated library with few mail slots, registered in a real catalog (SQLite or PostgreSQL) through
`MediaService`, and a real job engine running the vault's mail-slot jobs; the operator's hands at the mail slot are
`tapeline-vtl mailslot DIR ...`, as a person types them. A module of its own, not conftest.py (see tests/media)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import select

from appliance.catalog import media as cat
from appliance.catalog import tape_sets
from appliance.catalog.engine import open_catalog
from appliance.catalog.models import Cartridge, Pool
from appliance.catalog.vaults import create_vault
from appliance.config import load
from appliance.media import pools
from appliance.media.index_cache import IndexCache
from appliance.media.service import MediaService
from appliance.ops.job_records import get_job
from appliance.ops.jobs import JobEngine
from appliance.vault.mailslot_jobs import VaultTasks
from simulators.vtl.cli import main as vtl_main

CAPACITY = 64 * 1024 * 1024
DAY = 86400


def now() -> datetime:
    return datetime.now(timezone.utc)


def operator(directory: Path, *actions: list[str]) -> None:
    """An operator at the mail slot: each action is `open`, `close`, `insert BARCODE` or `remove N`."""
    for action in actions:
        assert vtl_main(["mailslot", str(directory), *action]) == 0, action


class Site:
    def __init__(self, tmp_path: Path, catalog_url: str, mailslots: int):
        self.library_dir = tmp_path / "vtl"
        assert vtl_main(["init", str(self.library_dir), "--slots", "12", "--drives", "2", "--mailslots",
                         str(mailslots), "--capacity", str(CAPACITY)]) == 0
        config = tmp_path / "tapeline.toml"
        config.write_text(f'data_dir = "{tmp_path / "data"}"\n[catalog]\nurl = "{catalog_url}"\n')
        self.settings = load(config_file=config)
        self.catalog = open_catalog(self.settings.catalog_url)
        self.media = MediaService(self.catalog, self.settings, wait_alert=0.2)
        d = self.library_dir
        self.media.add_library("vtl", f"local://{d}/changer", [f"local://{d}/drive0", f"local://{d}/drive1"])
        self.library = cat.get_library(self.catalog, "vtl")
        self.vault = create_vault(self.catalog, "ironvault", contact="+1 555 0100")
        self.cache = IndexCache(self.settings.data_dir / "tape-index")
        self.engine = JobEngine(self.catalog, VaultTasks(None, self.media, self.cache, self.settings).bodies(),
                                tape_slots=lambda: 2)
        self.media.engine = self.engine  # as the daemon sets it: the import queues sampled checks through it
        self.engine.start()

    def close(self) -> None:
        self.engine.stop()
        self.media.close()
        self.catalog.close()

    def pool(self, name: str = "weekly", allocation: str = "continue", retention_days: int = 30,
             vault: bool = True, reuse_days: int = 0) -> Pool:
        cat.create_pool(self.catalog, name, self.library.id, retention_days * DAY, allocation, None, None, True,
                        reuse_days * DAY)
        with self.catalog.session() as s:
            row = s.exec(select(Pool).where(Pool.name == name)).one()
            row.vault_id = self.vault.id if vault else None
            s.add(row)
        return cat.get_pool(self.catalog, name)

    def written(self, pool: str, barcodes: list[str], when: datetime, group: str = "docs") -> int:
        """A closed media set on `barcodes` holding one verified set of `group` (the catalog's side of a tape
        backup: the export moves cartridges, it never reads them); returns the set's id."""
        ms = pools.media_set_for_write(self.catalog, pool, when)
        for barcode in barcodes:
            pools.join_media_set(self.catalog, barcode, ms, when)
        set_id = tape_sets.create_set(self.catalog, str(uuid.uuid4()), ms.id, None, group, None, None, "full", None,
                                      when)
        for part, barcode in enumerate(barcodes, 1):
            tape_sets.add_part(self.catalog, set_id, part, barcode, 2, 3, 0, 10)
        ms = pools.stamp_set(self.catalog, ms.id, when)
        tape_sets.finish_set(self.catalog, set_id, "ok", 10, 1000, ms.expires, when)
        pools.close_idle_set(self.catalog, ms.id, when, ())
        return set_id

    def taken_out(self, barcodes: list[str]) -> None:
        """Cartridges ejected and taken out of the library by hand (then a fast inventory): on site, not
        mountable."""
        handle = self.media.library("vtl")
        with handle.lock:  # a job may be polling the same changer
            for i, barcode in enumerate(barcodes, 1):
                handle.changer.export(handle.changer.inventory().find(barcode).number, i)
        operator(self.library_dir, ["open"], *[["remove", str(i)] for i in range(1, len(barcodes) + 1)], ["close"])
        handle.inventory(now())

    def cartridge(self, barcode: str) -> Cartridge:
        return cat.get_cartridge(self.catalog, barcode)

    def wait_job(self, job_id: int, state: str | None = None, timeout: float = 60.0):
        """The job once it ended (or reached `state`)."""
        deadline = time.monotonic() + timeout
        while True:
            job = get_job(self.catalog, job_id)
            if job.state == state or (state is None and job.finished is not None):
                return job
            assert time.monotonic() < deadline, f"job {job_id} is {job.state}: {job.progress_message}"
            time.sleep(0.05)

    def wait_message(self, job_id: int, text: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while text not in (get_job(self.catalog, job_id).progress_message or ""):
            job = get_job(self.catalog, job_id)
            assert job.finished is None, f"job {job_id} ended ({job.state}: {job.reason}) before saying {text!r}"
            assert time.monotonic() < deadline, f"job {job_id} never said {text!r}: {job.progress_message}"
            time.sleep(0.05)
        return get_job(self.catalog, job_id)
