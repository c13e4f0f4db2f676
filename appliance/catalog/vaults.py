"""Vaults and the cases cartridges travel in (offsite rotation's places; the moves are in catalog/moves.py)."""

from __future__ import annotations

from sqlmodel import Session, select

from appliance.catalog.engine import Catalog
from appliance.catalog.media import check_name, get_named
from appliance.catalog.models import Cartridge, MediaCase, Vault
from appliance.errors import Conflict


def create_vault(catalog: Catalog, name: str, contact: str = "") -> Vault:
    check_name("vault", name)
    with catalog.session() as s:
        if s.exec(select(Vault).where(Vault.name == name)).first() is not None:
            raise Conflict(f"vault '{name}' already exists", f"see `tapeline vault show {name}`")
        vault = Vault(name=name, contact=contact)
        s.add(vault)
    return vault


def get_vault(catalog: Catalog, name: str) -> Vault:
    return get_named(catalog, Vault, name, "tapeline vault list", "tapeline vault create NAME --contact TEXT")


def list_vaults(catalog: Catalog) -> list[Vault]:
    with catalog.reader() as s:
        return list(s.exec(select(Vault).order_by(Vault.name)).all())


def vault_names(catalog: Catalog) -> dict[int, str]:
    return {v.id: v.name for v in list_vaults(catalog)}


def case_for(session: Session, number: str, vault_id: int | None) -> MediaCase:
    """The case numbered `number`, made on first use."""
    case = session.exec(select(MediaCase).where(MediaCase.number == number)).first()
    if case is None:
        case = MediaCase(number=number, vault_id=vault_id)
        session.add(case)
        session.flush()
    return case


def in_case(session: Session, case_id: int) -> list[Cartridge]:
    return list(session.exec(select(Cartridge).where(Cartridge.case_id == case_id).order_by(Cartridge.barcode)).all())
