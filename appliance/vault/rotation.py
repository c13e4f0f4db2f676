"""The operator's side of offsite rotation: vaults and what they hold, cartridges received in a vault, recalled
from it and handed back to the courier (the mail-slot side, export and import, is vault/export.py and import_.py).

Invariants:
- Every move goes through catalog/moves.py (validated, recorded with the operator's name), all of one request in
  one transaction: a receipt or recall with a discrepancy moves nothing.
- A discrepancy (a cartridge received that was never sent, or sent to another vault; a barcode or case given twice;
  a name the catalog does not know) is refused with one line naming each, and raises an alert: a vault's receipt
  that disagrees with the catalog is something to look into, never to fix silently. `skip` (the operator's word)
  lets a cartridge that really is there be received from another state; it does not cover a barcode given twice.
- A case is received (and sent back) as one: naming it names every cartridge in it. Its return date is its latest
  cartridge's expiry (None: one of them never expires).
- Recall without names takes what is due (vault/policy.py) and the sampled checks (vault/checks.py); naming
  cartridges that hold the only offsite copy of unexpired points is refused unless `force`, naming the points.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func
from sqlmodel import select

from appliance.catalog import moves
from appliance.catalog.engine import Catalog
from appliance.catalog.media import find_cartridge, get_pool
from appliance.catalog.models import Cartridge, MediaCase, Pool, Vault
from appliance.catalog.vaults import create_vault, get_vault, list_vaults
from appliance.errors import Conflict
from appliance.ops import alerts
from appliance.vault import checks, copies, policy
from appliance.text import plural


def case_return(carts: list[Cartridge]) -> datetime | None:
    """A case comes back when its latest cartridge expires; None when one never does."""
    if not carts or any(c.expires is None and c.media_set_id is not None for c in carts):
        return None
    dates = [c.expires for c in carts if c.expires is not None]
    return max(dates) if dates else None


def _counts(catalog: Catalog, vault_ids: list[int]) -> dict[int, dict[str, int]]:
    """Vault id -> {rotation state shown: cartridges}, counted in one query (a vault may hold thousands)."""
    counts: dict[int, dict[str, int]] = {v: {} for v in vault_ids}
    with catalog.reader() as s:
        for vault_id, rotation, n in s.exec(select(Cartridge.vault_id, Cartridge.rotation, func.count())
                                            .where(Cartridge.vault_id.in_(vault_ids))
                                            .group_by(Cartridge.vault_id, Cartridge.rotation)).all():
            counts[vault_id][moves.SHOWN[rotation]] = n
    return counts


def _summary(vault: Vault, counts: dict[str, int]) -> dict:
    return {"name": vault.name, "contact": vault.contact, "created": vault.created, "cartridges": counts}


def vault_view(catalog: Catalog, vault: Vault, detail: bool = False) -> dict:
    """The vault and its cartridges counted by rotation state; with `detail` its cases and their cartridges."""
    view = _summary(vault, _counts(catalog, [vault.id])[vault.id])
    if not detail:
        return view
    with catalog.reader() as s:
        carts = s.exec(select(Cartridge).where(Cartridge.vault_id == vault.id).order_by(Cartridge.barcode)).all()
        cases = {c.id: c.number for c in s.exec(select(MediaCase).where(
            MediaCase.id.in_({c.case_id for c in carts if c.case_id is not None}))).all()}
        pools = {p.id: p.name for p in s.exec(select(Pool)).all()}
    grouped: dict[str | None, list[Cartridge]] = defaultdict(list)
    for c in carts:
        grouped[cases.get(c.case_id)].append(c)
    view["cases"] = [{"case": number, "returns": case_return(cs), "cartridges": [_cart(c, pools) for c in cs]}
                     for number, cs in sorted(grouped.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]
    return view


def _cart(c: Cartridge, pools: dict[int, str]) -> dict:
    return {"barcode": c.barcode, "rotation": moves.SHOWN[c.rotation], "pool": pools.get(c.pool_id),
            "state": c.state, "expires": c.expires, "last_check": c.last_check,
            "last_check_result": c.last_check_result}


def create(catalog: Catalog, name: str, contact: str) -> dict:
    return vault_view(catalog, create_vault(catalog, name, contact))


def list_all(catalog: Catalog) -> list[dict]:
    vaults = list_vaults(catalog)
    counts = _counts(catalog, [v.id for v in vaults])
    return [_summary(v, counts[v.id]) for v in vaults]


def show(catalog: Catalog, name: str) -> dict:
    return vault_view(catalog, get_vault(catalog, name), detail=True)


def _resolve(s, items: list[str]) -> tuple[list[tuple[str, Cartridge]], list[str]]:
    """(item named, cartridge) for each barcode or case number given, and the discrepancies among them."""
    found, problems, seen = [], [], {}
    for item in items:
        cart = find_cartridge(s, item)
        if cart is not None:
            carts = [cart]
        else:
            case = s.exec(select(MediaCase).where(MediaCase.number == item)).first()
            if case is None:
                problems.append(f"{item} is neither a cartridge nor a case the catalog knows")
                continue
            carts = list(s.exec(select(Cartridge).where(Cartridge.case_id == case.id)
                                .order_by(Cartridge.barcode)).all())
            if not carts:
                problems.append(f"case {item} holds no cartridge")
        for cart in carts:
            if cart.barcode in seen:
                first = seen[cart.barcode]
                problems.append(f"{cart.barcode} given twice" + ("" if first == item == cart.barcode else
                                                                 f" ({_named(first, cart)} and {_named(item, cart)})"))
                continue
            seen[cart.barcode] = item
            found.append((item, cart))
    return found, problems


def _named(item: str, cart: Cartridge) -> str:
    return "itself" if item == cart.barcode else f"in case {item}"


def _refuse(catalog: Catalog, doing: str, problems: list[str], fix: str) -> None:
    shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
    message = f"{doing}: {len(problems)} discrepanc{'y' if len(problems) == 1 else 'ies'}: {shown}"
    alerts.raise_alert(catalog, "warning", message, fix)
    raise Conflict(message, fix)


def receive(catalog: Catalog, items: list[str], vault: str, now: datetime, operator: str,
            skip: bool = False) -> dict:
    """The vault `vault` confirms these cartridges (or cases) arrived: courier -> vault."""
    target = get_vault(catalog, vault)
    with catalog.session() as s:
        found, problems = _resolve(s, items)
        names = {v.id: v.name for v in s.exec(select(Vault)).all()}
        for _, cart in found:
            if cart.rotation == "vault":
                problems.append(f"{cart.barcode} is already in vault {names.get(cart.vault_id)}")
            elif cart.rotation != "courier" and not skip:
                problems.append(f"{cart.barcode} was never sent (it is {moves.SHOWN[cart.rotation]}, "
                                f"{moves.where(cart, names.get(cart.vault_id))})")
            elif cart.vault_id not in (None, target.id) and not skip:
                problems.append(f"{cart.barcode} was sent to vault {names.get(cart.vault_id)}, not {vault}")
        if problems:
            s.rollback()
            _refuse(catalog, f"receipt from vault {vault}", problems,
                    "nothing was received: check the vault's list against `tapeline report distribution`; give "
                    "each barcode or case once, and --skip for a cartridge that really is there although the "
                    "catalog did not send it there (recorded with your name)")
        for item, cart in found:
            moves.move(s, cart, "vault", now, operator=operator, vault_id=target.id, skip=skip,
                       reason="received" + ("" if item == cart.barcode else f" in case {item}"))
        received = [cart for _, cart in found]
        return {"vault": vault, "received": [c.barcode for c in received], "cases": _cases(s, received)}


def _cases(s, carts: list[Cartridge]) -> list[dict]:
    ids = {c.case_id for c in carts if c.case_id is not None}
    out = []
    for case in s.exec(select(MediaCase).where(MediaCase.id.in_(ids)).order_by(MediaCase.number)).all() if ids \
            else []:
        inside = list(s.exec(select(Cartridge).where(Cartridge.case_id == case.id)).all())
        out.append({"case": case.number, "cartridges": sorted(c.barcode for c in inside),
                    "returns": case_return(inside)})
    return out


def recall(catalog: Catalog, now: datetime, operator: str, pool: str | None = None,
           barcodes: list[str] | None = None, force: bool = False) -> dict:
    """Vault -> vault-retrieve: the due cartridges (and this period's sampled checks), or the ones named. Refused
    for named ones that hold the only offsite copy of unexpired points, unless `force`."""
    if pool is not None:
        get_pool(catalog, pool)
    due = [] if barcodes else policy.due_back(catalog, now, pool)
    sampled = [] if barcodes else checks.check_due(catalog, now, pool)
    with catalog.session() as s:
        if barcodes:
            found, problems = _resolve(s, list(barcodes))
            problems += [f"{c.barcode} is not in a vault (it is {moves.SHOWN[c.rotation]})"
                         for _, c in found if c.rotation != "vault"]
            if problems:
                s.rollback()
                _refuse(catalog, "recall", problems, "nothing was recalled: name cartridges or cases that are in a "
                        "vault (`tapeline vault show NAME` lists them)")
            chosen = {c.id: (c, "recalled by the operator") for _, c in found}
            lost = copies.only_copies(s, set(chosen), now, offsite_only=True)
            if lost and not force:
                raise Conflict(f"recalling {', '.join(c.barcode for c, _ in chosen.values())} takes the only "
                               f"offsite copy of {plural(len(lost), 'recovery point')} that have not expired: "
                               f"{copies.describe(lost)}",
                               "wait until they expire (`tapeline vault recall` takes them then), or rerun with "
                               "--force to recall them anyway")
        else:
            lost = []
            chosen = choose_recalls([s.get(Cartridge, c.id) for c in due],
                                    [s.get(Cartridge, c.id) for c in sampled], now)
        for cart, reason in chosen.values():
            moves.move(s, cart, "vaultretrieve", now, operator=operator, reason=reason)
        pools = {p.id: p.name for p in s.exec(select(Pool)).all()}
        names = {v.id: v.name for v in s.exec(select(Vault)).all()}
        recalled = [{"barcode": c.barcode, "pool": pools.get(c.pool_id), "vault": names.get(c.vault_id),
                     "reason": reason, "case": _case_number(s, c)} for c, reason in chosen.values()]
    return {"recalled": sorted(recalled, key=lambda r: (r["vault"] or "", r["case"] or "", r["barcode"])),
            "forced_points": lost}


def choose_recalls(due: list[Cartridge], sampled: list[Cartridge], now: datetime) -> dict[int, tuple[Cartridge, str]]:
    """What a recall without names takes, over rows: cartridge id -> (the row, the reason on the pick list); a
    sampled one (not due anyway) is stamped as requested for its check at `now`."""
    chosen = {c.id: (c, "due: nothing unexpired left") for c in due}
    for c in sampled:
        if c.id not in chosen:
            c.check_requested = now
            chosen[c.id] = (c, "sampled read-back check")
    return chosen


def _case_number(s, cart: Cartridge) -> str | None:
    case = s.get(MediaCase, cart.case_id) if cart.case_id is not None else None
    return case.number if case else None


def sent_back(catalog: Catalog, items: list[str], now: datetime, operator: str) -> dict:
    """The courier took these cartridges (or cases) back from the vault: vault-retrieve -> courier-retrieve."""
    with catalog.session() as s:
        found, problems = _resolve(s, items)
        problems += [f"{c.barcode} was not recalled (it is {moves.SHOWN[c.rotation]})"
                     for _, c in found if c.rotation != "vaultretrieve"]
        if problems:
            s.rollback()
            _refuse(catalog, "sent back", problems, "nothing was recorded: name cartridges on the vault's pick list "
                    "(`tapeline report pick-list-vault`), each once; recall others first with `tapeline vault "
                    "recall BARCODE`")
        for item, cart in found:
            moves.move(s, cart, "courierretrieve", now, operator=operator,
                       reason="taken back by the courier" + ("" if item == cart.barcode else f" in case {item}"))
        return {"sent_back": [c.barcode for _, c in found]}



def policy_view(catalog: Catalog, pool: Pool) -> dict:
    with catalog.reader() as s:
        vault = s.get(Vault, pool.vault_id) if pool.vault_id is not None else None
    return {"pool": pool.name, "vault": vault.name if vault else None, "offsite_copies": pool.offsite_copies,
            "recall": pool.recall, "gfs": dict(pool.gfs or {}), "retention_seconds": pool.retention_seconds,
            "check_sample": pool.check_sample, "check_every_seconds": pool.check_every_seconds}


def policies(catalog: Catalog, pool: str | None) -> list[dict]:
    if pool is not None:
        return [policy_view(catalog, get_pool(catalog, pool))]
    with catalog.reader() as s:
        rows = s.exec(select(Pool).order_by(Pool.name)).all()
    return [policy_view(catalog, p) for p in rows]


def set_policy(catalog: Catalog, name: str, change: policy.PolicyChange, now: datetime, confirm: bool) -> dict:
    pool, restamped = policy.set_policy(catalog, name, change, now, confirm)
    return {**policy_view(catalog, pool), "restamped": restamped}


def ready(catalog: Catalog, now: datetime, pool: str | None) -> list[dict]:
    """What `vault export` would take now, with where each cartridge is."""
    carts = policy.offsite_ready(catalog, now, pool, closing=True)
    with catalog.reader() as s:
        pools = {p.id: p.name for p in s.exec(select(Pool)).all()}
        vaults = {p.id: p.vault_id for p in s.exec(select(Pool)).all()}
        names = {v.id: v.name for v in s.exec(select(Vault)).all()}
    return [{**_cart(c, pools), "where": moves.where(c), "vault": names.get(vaults.get(c.pool_id))} for c in carts]
