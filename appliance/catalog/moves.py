"""Where a cartridge is, and every move of offsite rotation, recorded.

Invariants:
- A cartridge's place is `Cartridge.location_kind` (models.LOCATIONS) with `location_number` inside the library
  (slot, drive, mail slot) and `vault_id` in a vault. `where()` renders it as one string for people and reports.
- Its rotation state follows DRM (models.ROTATION_STATES). `NEXT` lists the moves of the normal cycle; any other move
  is refused unless the operator says so (`skip=True`), and then it is recorded with the operator's name like any
  other. A cartridge found where the catalog does not expect it is a discrepancy for vault/ to report and alert,
  never fixed here silently.
- Each rotation state has one place outside the library (`PLACE`): courier and courier-retrieve are "transit",
  vault and vault-retrieve are the vault, not-mountable and on-site-retrieve are on site, out of the library
  ("outside"). Mountable means in the library: its slot or drive comes from the changer's inventory.
- Every change of rotation state or of location kind is one CartridgeMove row, in the caller's transaction; moves
  inside the library (slot to drive and back) are not recorded: they are counted as mounts.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from appliance.catalog.models import (IN_LIBRARY_LOCATIONS, LOCATIONS, ROTATION_STATES, Cartridge, CartridgeMove,
                                      Vault)
from appliance.errors import Conflict, UsageError

NEXT = {
    "mountable": ("notmountable", "courier"),
    "notmountable": ("mountable", "courier"),
    "courier": ("vault",),
    "vault": ("vaultretrieve",),
    "vaultretrieve": ("courierretrieve",),
    "courierretrieve": ("onsiteretrieve",),
    "onsiteretrieve": ("mountable", "notmountable"),
}

PLACE = {"notmountable": "outside", "courier": "transit", "vault": "vault", "vaultretrieve": "vault",
         "courierretrieve": "transit", "onsiteretrieve": "outside"}

RETURNS = ("notmountable", "onsiteretrieve", "courierretrieve", "vaultretrieve")
"""States of a cartridge that, found back in the library, is an expected return (vault import, inventory): on the
shelf, or recalled from the vault. From courier-retrieve and vault-retrieve the move to mountable leaves the cycle
(`skip`): no command moves a cartridge to on-site-retrieve (docs/vault.md)."""

SHOWN = {"mountable": "mountable", "notmountable": "not mountable", "courier": "courier", "vault": "vault",
         "vaultretrieve": "vault-retrieve", "courierretrieve": "courier-retrieve",
         "onsiteretrieve": "on-site-retrieve"}


def rotation_state(text: str) -> str:
    """An operator's spelling ("vault-retrieve", "vault_retrieve", "VaultRetrieve") of a rotation state."""
    key = text.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in ROTATION_STATES:
        raise UsageError(f"unknown rotation state {text!r}", f"use one of: {', '.join(SHOWN.values())}")
    return key


def element_shown(kind: str, number: int | None) -> str:
    """A library element as people name it: "slot 12", "drive 0", "mail slot 2"."""
    return f"{kind.replace('mailslot', 'mail slot')} {number}"


def where(cart: Cartridge, vault_name: str | None = None) -> str:
    """The cartridge's place as one string: "slot 12", "drive 0", "mail slot 2", "on site", "in transit",
    "vault Iron Mountain"."""
    kind = cart.location_kind
    if kind in IN_LIBRARY_LOCATIONS:
        return element_shown(kind, cart.location_number)
    if kind == "vault":
        return f"vault {vault_name}" if vault_name else "vault"
    return {"outside": "on site", "transit": "in transit"}[kind]


def move(session: Session, cart: Cartridge, to: str, when: datetime, *, operator: str, reason: str = "",
         vault_id: int | None = None, place: tuple[str, int | None] | None = None, skip: bool = False,
         job_id: int | None = None) -> CartridgeMove | None:
    """Move `cart` to rotation state `to` and record it. `place` is its library element (kind, number) when it
    becomes mountable; `vault_id` the vault it goes to (kept from before when not given). Returns the move, or None
    when nothing changed. Raises Conflict for a move out of the cycle without `skip`."""
    before = (cart.location_kind, cart.rotation)
    shown_before = where(cart, _vault_name(session, cart.vault_id))
    apply_move(cart, to, vault_id=vault_id, place=place, skip=skip, vault_name=lambda v: _vault_name(session, v))
    session.add(cart)
    if (cart.location_kind, to) == before:
        return None
    row = CartridgeMove(cartridge_id=cart.id, time=when, operator=operator, from_location=shown_before,
                        to_location=where(cart, _vault_name(session, cart.vault_id)), from_rotation=before[1],
                        to_rotation=to, reason=reason, job_id=job_id)
    session.add(row)
    return row


def apply_move(cart: Cartridge, to: str, *, vault_id: int | None = None, place: tuple[str, int | None] | None = None,
          skip: bool = False, vault_name=lambda vault_id: None) -> None:
    """`move`'s decision over the row, without recording it (the forecast moves its rows in memory so):
    validated, then the cartridge's rotation state and place set. `vault_name(id)`: None for an unknown vault."""
    if to not in ROTATION_STATES:
        raise UsageError(f"unknown rotation state {to!r}", f"use one of: {', '.join(ROTATION_STATES)}")
    if to != cart.rotation and to not in NEXT[cart.rotation] and not skip:
        raise Conflict(f"cartridge {cart.barcode} is {SHOWN[cart.rotation]}: it cannot go to {SHOWN[to]} from there "
                       f"(next: {', '.join(SHOWN[n] for n in NEXT[cart.rotation])})",
                       "rerun with --skip if it really is so (the move is recorded with your name)")
    if to == "mountable":
        if place is None or place[0] not in IN_LIBRARY_LOCATIONS:
            raise UsageError(f"cartridge {cart.barcode} becomes mountable only in the library",
                             "import it through the mail slot (`tapeline vault import`)")
        kind, number = place
    else:
        kind, number = PLACE[to], None
    if to in ("courier", "vault", "vaultretrieve", "courierretrieve"):  # headed for, in, or back from a vault
        vault_id = vault_id if vault_id is not None else cart.vault_id
        if vault_id is None and kind == "vault":
            raise UsageError(f"cartridge {cart.barcode} goes to a vault but none is named", "name the vault (--vault)")
        if vault_id is not None and vault_name(vault_id) is None:
            raise UsageError(f"vault {vault_id} does not exist", "list the vaults with `tapeline vault list`")
    else:
        vault_id = None
    cart.rotation, cart.location_kind, cart.location_number, cart.vault_id = to, kind, number, vault_id


def relocate(session: Session, cart: Cartridge, kind: str, number: int | None, when: datetime, *, operator: str,
             reason: str = "") -> CartridgeMove | None:
    """Record where the changer (or the operator) put `cart` without changing its rotation state: a move between
    the library and the outside is recorded, one inside the library only updates the element."""
    if kind not in LOCATIONS or kind == "vault":
        raise UsageError(f"cartridge {cart.barcode} cannot be placed at {kind!r} this way",
                         "vaults are reached through rotation moves (`tapeline vault ...`)")
    before_kind, shown_before = cart.location_kind, where(cart, _vault_name(session, cart.vault_id))
    cart.location_kind, cart.location_number = kind, number
    session.add(cart)
    if before_kind == kind or (before_kind in IN_LIBRARY_LOCATIONS and kind in IN_LIBRARY_LOCATIONS):
        return None
    row = CartridgeMove(cartridge_id=cart.id, time=when, operator=operator, from_location=shown_before,
                        to_location=where(cart), from_rotation=cart.rotation, to_rotation=cart.rotation,
                        reason=reason)
    session.add(row)
    return row


def history(session: Session, cartridge_id: int) -> list[CartridgeMove]:
    """A cartridge's moves, oldest first."""
    return list(session.exec(select(CartridgeMove).where(CartridgeMove.cartridge_id == cartridge_id)
                             .order_by(CartridgeMove.time, CartridgeMove.id)).all())


def _vault_name(session: Session, vault_id: int | None) -> str | None:
    """Kept in the session's info: its identity map holds rows weakly, so a loop of moves (an export, the
    forecast's days) would otherwise load the same vault twice per move."""
    if vault_id is None:
        return None
    names = session.info.setdefault("vault_names", {})
    if vault_id not in names:
        vault = session.get(Vault, vault_id)
        names[vault_id] = vault.name if vault else None
    return names[vault_id]
