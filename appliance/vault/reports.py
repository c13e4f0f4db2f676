"""The offsite rotation reports (docs/reports.md, "Offsite rotation"): pick lists for the library and the vault,
the distribution list, each vault's inventory, discrepancies, media status per pool, and the cartridges a restore
needs. Each builder takes (appliance, days, now) like ops/reports/builders.py and returns a model.Report; the ones a
vault company takes as a file also carry `vault_lists` for the `.IM` format.

Invariants:
- Everything is read from the catalog in a few queries (no query per cartridge): a site of 10,000 cartridges and
  two years of moves is reported in well under a second (bench/vault_reports.py).
- What is due to leave or come back is what appliance/vault/policy.py says (offsite_ready, due_back): the reports
  never decide it a second way.
- A cartridge's return date is when its data expires (its media set's expiry); a case returns with its latest
  cartridge, never when one of them is kept forever (vault/rotation.py case_return).
- Every cartridge the catalog has somewhere it should not be is a discrepancy row with its fix: nothing is left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog import tape_sets
from appliance.catalog.models import (IN_LIBRARY_LOCATIONS, Cartridge, CartridgeMove, Library, MediaCase, Pool,
                                      Vault)
from appliance.catalog.moves import SHOWN, where
from appliance.errors import UsageError
from appliance.text import noun, plural
from appliance.ops.reports.model import Column, Report, Table, VaultList
from appliance.vault.rotation import case_return

OFFSITE = ("courier", "vault", "vaultretrieve", "courierretrieve")  # rotation states away from the site
IN_TRANSIT_TOO_LONG = timedelta(days=3)  # a courier trip takes a day or two: longer is a cartridge gone astray
RECALL_TOO_LONG = timedelta(days=7)  # a vault sends recalled cartridges back with its next weekly run at the latest
NOT_RECALLED_TOO_LONG = timedelta(days=1)  # an operator runs `vault recall` daily: due since today is not overdue


@dataclass(frozen=True)
class Names:
    """The names reports show for the ids cartridges carry."""

    pools: dict[int, str]
    vaults: dict[int, str]
    cases: dict[int, str]
    libraries: dict[int, str]
    pool_vaults: dict[int, int]  # pool id -> the vault its sets go to

    def vault_of(self, c: Cartridge) -> str:
        """The vault a cartridge is in or bound for: its own, else its pool's."""
        return self.vaults.get(c.vault_id) or self.vaults.get(self.pool_vaults.get(c.pool_id), "-")


def _names(s) -> Names:
    return Names(dict(s.exec(select(Pool.id, Pool.name)).all()), dict(s.exec(select(Vault.id, Vault.name)).all()),
                 dict(s.exec(select(MediaCase.id, MediaCase.number)).all()),
                 dict(s.exec(select(Library.id, Library.name)).all()),
                 dict(s.exec(select(Pool.id, Pool.vault_id).where(Pool.vault_id.is_not(None))).all()))


def _place(c: Cartridge, names: Names) -> str:
    return where(c, names.vaults.get(c.vault_id))


def _case(c: Cartridge, names: Names) -> str:
    return names.cases.get(c.case_id, "-") if c.case_id else "-"


def _last_moves(s, to_rotation: tuple[str, ...], cartridge_ids: list[int]) -> dict[int, datetime]:
    """Cartridge id -> the time of its latest move into one of `to_rotation` (when it was sent, arrived, recalled)."""
    if not cartridge_ids:
        return {}
    rows = s.exec(select(CartridgeMove.cartridge_id, func.max(CartridgeMove.time))
                  .where(CartridgeMove.to_rotation.in_(to_rotation))
                  .where(CartridgeMove.cartridge_id.in_(cartridge_ids))
                  .group_by(CartridgeMove.cartridge_id)).all()
    return dict(rows)


def _vault_lists(carts: list[Cartridge], names: Names) -> tuple[VaultList, ...]:
    """The `.IM` lists: per vault and library, each cartridge with its return date."""
    by: dict[tuple[str, str], list[tuple[str, datetime | None]]] = defaultdict(list)
    for c in carts:
        vault = names.vault_of(c)
        by[(vault, names.libraries.get(c.library_id, "-"))].append((c.barcode, c.expires))
    return tuple(VaultList(vault, library, tuple(sorted(rows))) for (vault, library), rows in sorted(by.items()))


# -- pick list for the library ----------------------------------------------------------------------------------

def pick_list_library(appliance, days: int, now: datetime) -> Report:
    from appliance.vault import policy
    cat = appliance.catalog
    ready = policy.offsite_ready(cat, now, closing=True)  # what the next export sends
    with cat.reader() as s:
        names = _names(s)
        waiting = list(s.exec(select(Cartridge).where(Cartridge.rotation == "courier",
                                                      Cartridge.location_kind == "mailslot")
                              .order_by(Cartridge.location_number)).all())
        back = list(s.exec(select(Cartridge).where(Cartridge.rotation == "courierretrieve")  # sent back
                           .order_by(Cartridge.barcode)).all())
    in_library = sorted((c for c in ready if c.location_kind in IN_LIBRARY_LOCATIONS),
                        key=lambda c: (c.library_id or 0, c.location_kind, c.location_number or 0))
    elsewhere = [c for c in ready if c.location_kind not in IN_LIBRARY_LOCATIONS]
    rows = tuple((names.libraries.get(c.library_id, "-"), _place(c, names), c.barcode, names.pools.get(c.pool_id, "-"),
                  names.vault_of(c), c.expires) for c in in_library + elsewhere)
    summary = [f"{plural(len(ready), 'cartridge')} to send offsite today" if ready
               else "nothing to send offsite today",
               "eject them with `tapeline vault export --wait` (it empties the mail slots in batches), then hand "
               "them to the courier with this list" if ready else ""]
    if waiting:
        summary.append(f"{plural(len(waiting), 'cartridge')} in the mail slots wait for the courier")
    if back:
        one = len(back) == 1
        summary.append(f"{plural(len(back), 'cartridge')} {'is' if one else 'are'} on the way back from the vault: "
                       f"when the courier brings {'it' if one else 'them'}, put {'it' if one else 'them'} into the "
                       "mail slots and run `tapeline vault import --wait`")
    main = Table("To eject today", (Column("library"), Column("from"), Column("barcode"), Column("pool"),
                                    Column("to vault"), Column("returns", "time")), rows,
                 empty="nothing is ready to go offsite")
    mail = Table("In the mail slots, for the courier",
                 (Column("barcode"), Column("where"), Column("pool"), Column("to vault"), Column("returns", "time")),
                 tuple((c.barcode, _place(c, names), names.pools.get(c.pool_id, "-"),
                        names.vaults.get(c.vault_id, "-"), c.expires) for c in waiting), empty="none")
    home = Table("On the way back from the vault, to put into the library",
                 (Column("barcode"), Column("pool"), Column("where")),
                 tuple((c.barcode, names.pools.get(c.pool_id, "-"), _place(c, names)) for c in back), empty="none")
    return Report("pick-list-library", "Pick list for the library", now, days, tuple(x for x in summary if x),
                  (main, mail, home), needs_attention=bool(ready or back),
                  vault_lists=_vault_lists(in_library + elsewhere, names))


# -- pick list for the vault ------------------------------------------------------------------------------------

def pick_list_vault(appliance, days: int, now: datetime) -> Report:
    from appliance.vault import policy
    cat = appliance.catalog
    with cat.reader() as s:
        names = _names(s)
        recalled = list(s.exec(select(Cartridge).where(Cartridge.rotation == "vaultretrieve")).all())
        since = _last_moves(s, ("vaultretrieve",), [c.id for c in recalled])
    due = policy.due_back(cat, now)  # vaulted ones only
    recalled.sort(key=lambda c: (names.vaults.get(c.vault_id, ""), _case(c, names), c.barcode))
    rows = tuple((names.vaults.get(c.vault_id, "-"), _case(c, names), c.barcode, names.pools.get(c.pool_id, "-"),
                  since.get(c.id), c.expires) for c in recalled)
    cases = Counter((r[0], r[1]) for r in rows if r[1] != "-")
    per_vault = Counter(r[0] for r in rows)
    summary = [", ".join(f"vault {v}: {plural(n, 'cartridge')}" for v, n in sorted(per_vault.items()))
               + f" to send back ({plural(len(cases), 'case')})" if rows else "nothing recalled from any vault",
               "confirm each arrival with `tapeline vault receive BARCODE|CASE... --vault NAME`" if rows else ""]
    if due:
        summary.append(f"{plural(len(due), 'cartridge')} due back but not recalled yet: run `tapeline vault recall`")
    main = Table("To send back", (Column("vault"), Column("case"), Column("barcode"), Column("pool"),
                                  Column("recalled", "time"), Column("data expired", "time")), rows,
                 empty="nothing recalled")
    pending = Table("Due back, not recalled yet", (Column("vault"), Column("case"), Column("barcode"),
                                                   Column("pool"), Column("data expires", "time")),
                    tuple((names.vaults.get(c.vault_id, "-"), _case(c, names), c.barcode,
                           names.pools.get(c.pool_id, "-"), c.expires)
                          for c in sorted(due, key=lambda c: c.barcode)), empty="none")
    return Report("pick-list-vault", "Pick list for the vault", now, days, tuple(x for x in summary if x),
                  (main, pending), needs_attention=bool(due), vault_lists=_vault_lists(recalled, names))


# -- distribution -----------------------------------------------------------------------------------------------

def distribution(appliance, days: int, now: datetime) -> Report:
    """Where every cartridge travelling in the period goes: out to a vault (courier), back home (courier-retrieve),
    and those that arrived in the period, from the move history."""
    cat = appliance.catalog
    since = now - timedelta(days=days)
    with cat.reader() as s:
        names = _names(s)
        moved_ids = set(s.exec(select(CartridgeMove.cartridge_id).where(
            CartridgeMove.time >= since, CartridgeMove.to_rotation.in_(("courier", "courierretrieve")))).all())
        carts = list(s.exec(select(Cartridge).where(
            (Cartridge.rotation.in_(("courier", "courierretrieve"))) | (Cartridge.id.in_(moved_ids)))).all())
        sent = _last_moves(s, ("courier", "courierretrieve"), [c.id for c in carts])
    rows, outgoing = [], []
    for c in carts:
        vault = names.vault_of(c)
        going_out = c.rotation in ("courier", "vault", "vaultretrieve")
        if going_out:
            outgoing.append(c)
        rows.append((f"vault {vault}" if going_out else "on site", "on site" if going_out else f"vault {vault}",
                     _case(c, names), c.barcode, names.pools.get(c.pool_id, "-"), SHOWN[c.rotation],
                     sent.get(c.id), c.expires if going_out else None))
    rows.sort(key=lambda r: (r[0], r[2], r[3]))
    travelling = Counter(r[0] for r in rows if r[5] in ("courier", "courier-retrieve"))
    summary = (f"{plural(len(rows), 'cartridge')} travelled in the last {plural(days, 'day')}",
               ", ".join(f"{n} on the way to {to}" for to, n in sorted(travelling.items()))
               or "none is on the way now")
    table = Table("Distribution", (Column("to"), Column("from"), Column("case"), Column("barcode"), Column("pool"),
                                   Column("rotation"), Column("sent", "time"), Column("returns", "time")),
                  tuple(rows), empty="no cartridge travelled in the period")
    return Report("distribution", "Distribution list", now, days, summary, (table,),
                  vault_lists=_vault_lists(outgoing, names))


# -- vault inventory --------------------------------------------------------------------------------------------

def vault_inventory(appliance, days: int, now: datetime) -> Report:
    cat = appliance.catalog
    with cat.reader() as s:
        names = _names(s)
        held = list(s.exec(select(Cartridge).where(Cartridge.rotation.in_(("vault", "vaultretrieve")))).all())
        arrived = _last_moves(s, ("vault",), [c.id for c in held])
        on_way = dict(s.exec(select(Cartridge.vault_id, func.count()).where(Cartridge.rotation == "courier")
                             .group_by(Cartridge.vault_id)).all())
    in_case: dict[int, list[Cartridge]] = defaultdict(list)
    for c in held:
        if c.case_id:
            in_case[c.case_id].append(c)
    case_returns = {case_id: case_return(carts) for case_id, carts in in_case.items()}
    held.sort(key=lambda c: (names.vaults.get(c.vault_id, ""), _case(c, names), c.barcode))
    rows = tuple((names.vaults.get(c.vault_id, "-"), _case(c, names), c.barcode, names.pools.get(c.pool_id, "-"),
                  SHOWN[c.rotation], arrived.get(c.id), case_returns[c.case_id] if c.case_id else c.expires)
                 for c in held)
    per_vault = Counter(r[0] for r in rows)
    vaults = sorted(set(per_vault) | {names.vaults[v] for v in on_way if v in names.vaults})
    summary = tuple(f"vault {v} must hold {plural(per_vault[v], 'cartridge')}"
                    + (f"; {on_way[vid]} more on the way" if (vid := _vault_id(names, v)) in on_way else "")
                    for v in vaults) or ("no cartridge is in a vault",)
    table = Table("Cartridges each vault must hold", (Column("vault"), Column("case"), Column("barcode"),
                                                      Column("pool"), Column("rotation"), Column("arrived", "time"),
                                                      Column("returns", "time")), rows,
                  empty="no cartridge is in a vault")
    notes = ("reconcile this list against the vault's own: a cartridge on one list only is a discrepancy "
             "(`tapeline report discrepancies`)",)
    return Report("vault-inventory", "Vault inventory", now, days, summary, (table,), notes=notes,
                  vault_lists=_vault_lists(held, names))


def _vault_id(names: Names, name: str) -> int | None:
    return next((i for i, n in names.vaults.items() if n == name), None)


# -- discrepancies ----------------------------------------------------------------------------------------------

def discrepancies(appliance, days: int, now: datetime) -> Report:
    from appliance.vault import policy
    cat = appliance.catalog
    since = now - timedelta(days=days)
    rows = []
    with cat.reader() as s:
        names = _names(s)
        misplaced = list(s.exec(select(Cartridge).where(Cartridge.location_kind.in_(IN_LIBRARY_LOCATIONS),
                                                        Cartridge.rotation.in_(OFFSITE))).all())
        travelling = list(s.exec(select(Cartridge).where(Cartridge.rotation.in_(("courier", "courierretrieve")),
                                                         Cartridge.location_kind == "transit")).all())
        recalled = list(s.exec(select(Cartridge).where(Cartridge.rotation == "vaultretrieve")).all())
        missing = list(s.exec(select(Cartridge, CartridgeMove.time).join(
            CartridgeMove, CartridgeMove.cartridge_id == Cartridge.id).where(
            Cartridge.rotation == "notmountable", CartridgeMove.to_rotation == "notmountable",
            CartridgeMove.from_rotation == "mountable", CartridgeMove.operator == "tapeline")).all())
        sent = _last_moves(s, ("courier", "courierretrieve", "vaultretrieve"),
                           [c.id for c in travelling + recalled])
        seen = dict(s.exec(select(CartridgeMove.cartridge_id, func.max(CartridgeMove.time)).where(
            CartridgeMove.reason.like("%expected elsewhere%"), CartridgeMove.time >= since)
            .group_by(CartridgeMove.cartridge_id)).all())
    for c in misplaced:
        if c.location_kind == "mailslot" and c.rotation == "courier":
            continue  # ejected, waiting for the courier: where it should be
        vault = names.vaults.get(c.vault_id, "-")
        rows.append((c.barcode, "present, expected elsewhere", f"{SHOWN[c.rotation]} (vault {vault})",
                     _place(c, names), seen.get(c.id),
                     "if it came back, import it through the mail slot (`tapeline vault import --wait`); if it "
                     f"never left, send it again (`tapeline vault export --wait`); `tapeline media show {c.barcode}` "
                     "has its history"))
    last_missing: dict[int, tuple[Cartridge, datetime]] = {}
    for c, when in missing:
        if c.id not in last_missing or when > last_missing[c.id][1]:
            last_missing[c.id] = (c, when)
    for c, when in last_missing.values():
        rows.append((c.barcode, "expected in the library, missing", f"library {names.libraries.get(c.library_id, '-')}",
                     "not seen by the last inventory", when,
                     "find it on site and put it back through the mail slot (`tapeline vault import --wait`), or "
                     "retire it if it is lost"))
    for c in travelling:
        left = sent.get(c.id)
        if left is not None and now - left > IN_TRANSIT_TOO_LONG:
            vault = names.vaults.get(c.vault_id, "-")
            if c.rotation == "courier":
                rows.append((c.barcode, "in transit too long", f"vault {vault}", "in transit", left,
                             f"ask the courier and vault {vault}; once it is there: `tapeline vault receive "
                             f"{c.barcode} --vault {vault}`"))
            else:
                rows.append((c.barcode, "in transit too long", "on site", f"in transit from vault {vault}", left,
                             f"ask the courier and vault {vault}; once it is here: put it into the mail slot and run "
                             "`tapeline vault import --wait`"))
    for c in recalled:
        asked = sent.get(c.id)
        if asked is not None and now - asked > RECALL_TOO_LONG:
            vault = names.vaults.get(c.vault_id, "-")
            rows.append((c.barcode, "overdue return", "on site", f"vault {vault} (recalled)", asked,
                         f"ask vault {vault} to send it back (`tapeline report pick-list-vault`)"))
    for c in policy.due_back(cat, now):  # vaulted ones only
        if c.expires is None or now - c.expires >= NOT_RECALLED_TOO_LONG:
            vault = names.vaults.get(c.vault_id, "-")
            rows.append((c.barcode, "overdue return", "recalled", f"vault {vault}", c.expires,
                         "put it on the vault's pick list with `tapeline vault recall`"))
    rows.sort(key=lambda r: (r[1], r[0]))
    kinds = Counter(r[1] for r in rows)
    summary = (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) if rows
               else "every cartridge is where the catalog expects it",)
    table = Table("Discrepancies", (Column("barcode"), Column("discrepancy"), Column("expected"), Column("found"),
                                    Column("since", "time"), Column("fix")), tuple(rows),
                  empty="none: every cartridge is where the catalog expects it")
    return Report("discrepancies", "Discrepancies", now, days, summary, (table,), needs_attention=bool(rows))


# -- media status -----------------------------------------------------------------------------------------------

def media_status(appliance, days: int, now: datetime) -> Report:
    cat = appliance.catalog
    soon = now + timedelta(days=days)
    per: dict[int | None, Counter] = defaultdict(Counter)
    with cat.reader() as s:
        names = _names(s)
        # plain rows, not ORM objects: a big site has tens of thousands of cartridges
        for pool_id, state, rotation, expires, errors in s.exec(select(
                Cartridge.pool_id, Cartridge.state, Cartridge.rotation, Cartridge.expires,
                Cartridge.read_errors + Cartridge.write_errors).where(Cartridge.state != "cleaning")).all():
            n = per[pool_id]
            n["cartridges"] += 1
            if state in ("scratch", "blank", "expired"):
                n["scratch"] += 1
            elif state in ("allocated", "full"):
                n["in use"] += 1
            if rotation in OFFSITE:
                n["offsite"] += 1
            if expires is not None and now <= expires <= soon and state in ("allocated", "full"):
                n["expiring"] += 1
            if state == "damaged" or errors:
                n["errors"] += 1
        bad = list(s.exec(select(Cartridge).where(
            (Cartridge.state == "damaged") | (Cartridge.read_errors > 0) | (Cartridge.write_errors > 0),
            Cartridge.state != "cleaning")).all())
        # every verify records its time and outcome on the cartridge (vault/checks.py)
        checks = s.exec(select(Cartridge.pool_id, Cartridge.last_check, Cartridge.barcode, Cartridge.last_check_result)
                        .where(Cartridge.last_check.is_not(None)).order_by(Cartridge.last_check)).all()
    last_check = {pool_id: (when, barcode, result or "?") for pool_id, when, barcode, result in checks}
    rows = []
    for pool_id in sorted(per, key=lambda p: names.pools.get(p, "~")):
        n, check = per[pool_id], last_check.get(pool_id)
        rows.append((names.pools.get(pool_id, "(no pool)"), n["cartridges"], n["scratch"], n["in use"], n["offsite"],
                     n["expiring"], n["errors"], check[0] if check else None,
                     f"{check[1]}: {check[2]}" if check else "never"))
    dry = [r[0] for r in rows if r[0] != "(no pool)" and r[2] == 0]
    summary = (f"{plural(len(rows), 'pool')}, {plural(sum(r[1] for r in rows), 'cartridge')}, "
               f"{sum(r[4] for r in rows)} offsite, {sum(r[6] for r in rows)} with errors",
               f"no scratch cartridge left in {noun(len(dry), 'pool')} {', '.join(dry)}: import or label some, or "
               "recall expired ones"
               if dry else "every pool has scratch cartridges")
    table = Table("Pools", (Column("pool"), Column("cartridges", "int"), Column("scratch", "int"),
                            Column("in use", "int"), Column("offsite", "int"),
                            Column(f"expiring in {plural(days, 'day')}", "int"), Column("errors", "int"),
                            Column("last read-back check", "time"), Column("checked")), tuple(rows),
                  empty="no cartridge known")
    errors = Table("Cartridges with errors", (Column("barcode"), Column("pool"), Column("state"),
                                              Column("read errors", "int"), Column("write errors", "int"),
                                              Column("where"), Column("note")),
                   tuple((c.barcode, names.pools.get(c.pool_id, "-"), c.state, c.read_errors, c.write_errors,
                          _place(c, names), c.note or "") for c in sorted(bad, key=lambda c: c.barcode)),
                   empty="none")
    return Report("media-status", "Media status", now, days, summary, (table, errors),
                  needs_attention=bool(dry or bad))


# -- restore needs ----------------------------------------------------------------------------------------------

def restore_needs(appliance, days: int, now: datetime, group: str | None = None,
                  at: datetime | None = None) -> Report:
    if not group:
        raise UsageError("the restore-needs report needs a group",
                         "run `tapeline report restore-needs GROUP --at TIME`")
    cat = appliance.catalog
    chosen = tape_sets.set_at(cat, group, at or now)
    chain = tape_sets.chain(cat, chosen)  # full first: the order a restore reads them
    gone = [st for st in chain if st.state != "ok"]
    barcodes = sorted({p.barcode for st in chain for p in st.parts})
    with cat.reader() as s:
        names = _names(s)
        carts = {c.barcode: c for c in s.exec(select(Cartridge).where(Cartridge.barcode.in_(barcodes))).all()}
    rows, away = [], set()
    for st in chain:
        for p in st.parts:
            c = carts[p.barcode]
            if c.location_kind not in ("slot", "drive"):
                away.add(c.barcode)
            rows.append((st.id, st.kind, st.created, p.barcode, p.part, _place(c, names), SHOWN[c.rotation],
                         _case(c, names)))
    when = (at or now)
    summary = [f"restoring group {group} as of {when.isoformat(timespec='seconds')} reads tape set {chosen.id} "
               f"({chosen.kind}, written {chosen.created.isoformat(timespec='seconds')})"
               + (f" and the {plural(len(chain) - 1, 'set')} it builds on" if len(chain) > 1 else ""),
               f"{plural(len(barcodes), 'cartridge')}: "
               + (f"{len(away)} not in the library ({', '.join(sorted(away))}): recall or fetch them first" if away
                  else "all in the library")]
    if gone:
        summary.append(f"{'; '.join(f'set {st.id} is {st.state}' for st in gone)}: a restore refuses to read from "
                       f"{'it' if len(gone) == 1 else 'them'}; choose an earlier time (--at) for a chain of good sets")
    table = Table("Cartridges needed", (Column("set", "int"), Column("kind"), Column("written", "time"),
                                        Column("barcode"), Column("part", "int"), Column("where"),
                                        Column("rotation"), Column("case")), tuple(rows))
    return Report("restore-needs", f"Cartridges to restore group {group}", now, days, tuple(summary), (table,),
                  needs_attention=bool(away or gone))
