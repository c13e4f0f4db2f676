"""The vault's jobs as the engine runs them (the mail-slot ones, `vault-export` and `vault-import`, and the rotation
forecast, `vault-forecast`: a year's simulation takes longer than a client waits for an answer, so it runs as a job
whose progress is the simulated days), and their requests: each is checked before a job is queued (an unknown pool
or library, a pool with no vault, weeks out of range: one line naming the cause and the fix, and no job)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from appliance.catalog import media as cat
from appliance.catalog.models import utcnow
from appliance.errors import UsageError
from appliance.media import format as fmt
from appliance.ops.jobs import JobContext, Outcome
from appliance.text import plural
from appliance.vault import drplan, forecast
from appliance.vault.export import Export, rotating_pools
from appliance.vault.import_ import Import

EXPORT, IMPORT, FORECAST = "vault-export", "vault-import", "vault-forecast"


class VaultTasks:
    def __init__(self, store, media, cache, settings, block_size: int = fmt.BLOCK_SIZE):
        self.store, self.media, self.cache, self.settings, self.block_size = store, media, cache, settings, block_size

    def bodies(self) -> dict[str, Callable[[JobContext], Outcome]]:
        return {EXPORT: self.export, IMPORT: self.import_, FORECAST: self.forecast}

    def export(self, ctx: JobContext) -> Outcome:
        def backup(pool: str) -> Outcome:
            return drplan.backup_catalog(ctx, self.store, self.media, self.cache, self.block_size, self.settings,
                                         pool)
        return Export(ctx, self.media, self.settings, backup).run()

    def import_(self, ctx: JobContext) -> Outcome:
        return Import(ctx, self.media).run()

    @staticmethod
    def forecast(ctx: JobContext) -> Outcome:
        weeks = ctx.params["weeks"]
        result = forecast.forecast(ctx.catalog, utcnow(), weeks, ctx.progress, ctx.cancel)
        if result is None:
            return Outcome("cancelled", "cancelled by request")
        dry = sorted(pool for pool, day in result.scratch_out.items() if day)
        return Outcome("completed", result={
            "forecast": result.to_json(),
            "summary": f"{plural(weeks, 'week')} forecast: " + (
                f"scratch runs out in {'pool' if len(dry) == 1 else 'pools'} {', '.join(dry)}" if dry
                else "scratch lasts in every pool")})


class VaultDesk:
    """The API's side: requests checked, then queued."""

    def __init__(self, appliance):
        self.app = appliance

    @property
    def catalog(self):
        return self.app.catalog

    def export(self, pool: str | None, case: str | None) -> int:
        rotating_pools(self.catalog, pool)
        if case is not None:
            cat.check_name("case", case)
        job_id, _ = self.app.engine.submit(EXPORT, None, None, {"pool": pool, "case": case})
        return job_id

    def import_(self, library: str | None, accept: list[str], operator: str | None) -> int:
        if library is not None:
            cat.get_library(self.catalog, library)
        elif not cat.list_libraries(self.catalog):
            raise UsageError("no library is registered", "add one with `tapeline library add NAME CHANGER_URL "
                             "DRIVE_URL...`")
        job_id, _ = self.app.engine.submit(IMPORT, None, None, {"library": library, "accept": list(accept),
                                                                "operator": operator})
        return job_id

    def forecast(self, weeks: int) -> int:
        job_id, _ = self.app.engine.submit(FORECAST, None, None, {"weeks": forecast.check_weeks(weeks)})
        return job_id

    def plan(self, now: datetime | None = None) -> dict:
        """A fresh plan, written into the data directory as well."""
        now = now or utcnow()
        path = drplan.write(self.catalog, self.app.settings, now)
        return {"written": now.isoformat(), "path": str(path), "text": Path(path).read_text()}
