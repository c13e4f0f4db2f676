"""The retention dry run (`tapeline vault dry-run POOL [new policy]`): what a pool's policy change would free,
recall or keep, and which recovery points would then exist nowhere else.

Honest by construction: the change is made in a catalog transaction that is rolled back, and the real rules
(vault/policy.py's due_back and offsite_ready, media/pools.py's restamp and unexpired_data) are read inside it; a
point is lost when its only copies are the tapes the change frees (the replica may have pruned it already:
vault/copies.py). The same change made with `tapeline pool set` restamps written sets the same way: only when
it gives a retention or GFS tiers.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import get_pool
from appliance.catalog.models import Cartridge, MediaSet, Pool, TapeSet
from appliance.catalog.moves import SHOWN
from appliance.media import pools as pool_rules
from appliance.vault import copies, policy


def _state(s, pool: Pool, now: datetime) -> dict:
    carts = s.exec(select(Cartridge).where(Cartridge.pool_id == pool.id).order_by(Cartridge.barcode)).all()
    sets = s.exec(select(MediaSet).where(MediaSet.pool_id == pool.id)).all()
    live = s.exec(select(TapeSet.id).join(MediaSet, MediaSet.id == TapeSet.media_set_id)
                  .where(MediaSet.pool_id == pool.id, TapeSet.state == "ok")).all()
    expires = dict(s.exec(select(TapeSet.id, TapeSet.expires).where(TapeSet.id.in_(live))).all()) if live else {}
    return {"holding": {c.id for c in carts if pool_rules.unexpired_data(c, now)},
            "due": {c.id for c in policy.due_back_in(s, now, pool.name)},
            "ready": {c.id for c in policy.offsite_ready_in(s, now, pool.name)},
            "live_sets": {i for i, e in expires.items() if e is None or e > now},
            "expiry": {m.id: (m.uuid, m.tier, m.closed, m.expires) for m in sets},
            "carts": {c.id: (c.barcode, SHOWN[c.rotation], c.media_set_id) for c in carts}}


def dry_run(catalog: Catalog, name: str, change: policy.PolicyChange, now: datetime) -> dict:
    pool = get_pool(catalog, name)
    new_pool = change.applied_to(catalog, pool)
    with catalog.session() as s:
        before = _state(s, pool, now)
        row = s.get(Pool, pool.id)
        for field in ("vault_id", "offsite_copies", "recall", "gfs", "retention_seconds", "check_sample",
                      "check_every_seconds"):
            setattr(row, field, getattr(new_pool, field))
        s.add(row)
        for ms in s.exec(select(MediaSet).where(MediaSet.pool_id == pool.id)).all() if change.restamps else ():
            target = pool_rules.set_retention(row, ms.tier)
            if target != ms.retention_seconds:
                pool_rules.restamp(s, ms, target)
        s.flush()
        after = _state(s, pool, now)
        s.rollback()
    freed = before["holding"] - after["holding"]
    with catalog.reader() as s:
        lost = copies.only_copies(s, freed, now, gone_sets=before["live_sets"] - after["live_sets"])
    carts = before["carts"]

    def listed(ids):
        return [{"barcode": carts[i][0], "rotation": carts[i][1],
                 "media_set": before["expiry"][carts[i][2]][0] if carts[i][2] in before["expiry"] else None}
                for i in sorted(ids, key=lambda i: carts[i][0])]
    changed = [{"media_set": uuid, "tier": tier, "closed": closed, "expires_was": was,
                "expires_now": after["expiry"][i][3]}
               for i, (uuid, tier, closed, was) in sorted(before["expiry"].items())
               if after["expiry"][i][3] != was]
    return {"pool": name, "now": now,
            "free": listed(freed),
            "recall": listed(after["due"] - before["due"]),
            "send": listed(after["ready"] - before["ready"]),
            "no_longer_sent": listed(before["ready"] - after["ready"]),
            "keep": listed(after["holding"]),
            "media_sets": changed,
            "lost_points": lost}
