"""The sampled read-back check of vaulted cartridges (issue 9, "verified offsite").

A pool with `check_sample` N and `check_every` P has N of its vaulted cartridges recalled every P for a read-back
check: `vault recall` puts them on the vault's pick list with the due ones. The sample is the N cartridges holding
unexpired data checked longest ago (never checked first, then by barcode): over the rounds every cartridge is
read, where a random pick could miss one for years. A round is due when the pool's latest request is P old.

Back on site, the cartridge is read by `tapeline media verify BARCODE` (the import queues it); every verify records
its time and outcome on the cartridge (`last_check`, `last_check_result`: "ok" or the first problem), where `media
show` and the media status report read them. Until then it is not offsite-ready again (policy.check_pending), so
it never returns to the vault unread.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import find_cartridge
from appliance.catalog.models import Cartridge, Pool
from appliance.media import pools as pool_rules
from appliance.vault.policy import check_pending


def check_due(catalog: Catalog, now: datetime, pool: str | None = None) -> list[Cartridge]:
    """The vaulted cartridges this round of sampled checks recalls (of `pool`, or of every pool)."""
    with catalog.reader() as s:
        q = select(Pool).where(Pool.check_sample > 0, Pool.check_every_seconds != None)  # noqa: E711
        if pool is not None:
            q = q.where(Pool.name == pool)
        chosen: list[Cartridge] = []
        for p in s.exec(q).all():
            last = s.exec(select(func.max(Cartridge.check_requested)).where(Cartridge.pool_id == p.id)).one()
            if round_due(p, last, now):
                chosen += sample(p, s.exec(select(Cartridge).where(Cartridge.pool_id == p.id,
                                                                   Cartridge.rotation == "vault")).all(), now)
    return chosen


def round_due(pool: Pool, last_requested: datetime | None, now: datetime) -> bool:
    """Whether a round of the pool's sampled checks is due: its latest request (of any of its cartridges) is a
    period old, or there was none."""
    return bool(pool.check_sample) and pool.check_every_seconds is not None and (
        last_requested is None or last_requested + timedelta(seconds=pool.check_every_seconds) <= now)


def sample(pool: Pool, vaulted, now: datetime) -> list[Cartridge]:
    """This round's sample of the pool's cartridges in a vault (`vaulted`; any superset: each is checked here): the
    `check_sample` holding unexpired data checked longest ago (never checked first), then by barcode."""
    held = [c for c in vaulted if c.pool_id == pool.id and c.rotation == "vault" and pool_rules.unexpired_data(c, now)]
    held.sort(key=lambda c: (c.last_check is not None, c.last_check or now, c.barcode))
    return held[:pool.check_sample]


def record_check(catalog: Catalog, barcode: str, when: datetime, problem: str | None) -> None:
    """A verify read the cartridge: its outcome is its last check."""
    with catalog.session() as s:
        cart = find_cartridge(s, barcode)
        if cart is None:
            return
        cart.last_check, cart.last_check_result = when, "ok" if problem is None else problem[:200]
        s.add(cart)


def queue_pending(catalog: Catalog, engine, barcodes: list[str]) -> list[dict]:
    """Queue the read-back (`media-verify`) of those `barcodes` that came back for their sampled check; the import
    calls this for what it took in. Returns [{barcode, job}]."""
    with catalog.reader() as s:
        back = s.exec(select(Cartridge).where(Cartridge.barcode.in_(barcodes))).all() if barcodes else []
    queued = []
    for cart in sorted(back, key=lambda c: c.barcode):
        if check_pending(cart):
            job_id, _ = engine.submit("media-verify", None, None, {"barcode": cart.barcode})
            queued.append({"barcode": cart.barcode, "job": job_id})
    return queued
