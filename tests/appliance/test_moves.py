"""Offsite rotation's moves (catalog/moves.py) on SQLite and PostgreSQL: the DRM cycle, skips only on an operator's
word, one place per state, and a history of every move; and what a library inventory records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.catalog.engine import open_catalog
from appliance.catalog.media import add_library, find_cartridge
from appliance.catalog.models import Cartridge
from appliance.catalog.moves import history, move, where
from appliance.catalog.vaults import create_vault
from appliance.errors import Conflict, UsageError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def catalog(catalog_url):
    cat = open_catalog(catalog_url)
    lib = add_library(cat, "vtl", "local:///x", [])
    with cat.session() as s:
        s.add(Cartridge(barcode="A00001L9", library_id=lib.id, location_kind="slot", location_number=3))
    yield cat
    cat.close()


def _cart(catalog):
    with catalog.reader() as s:
        return find_cartridge(s, "A00001L9")


def test_a_cartridge_goes_round_the_cycle_and_every_move_is_recorded(catalog):
    vault = create_vault(catalog, "ironvault", contact="+1 555 0100")
    steps = [("courier", "in transit"), ("vault", "vault ironvault"), ("vaultretrieve", "vault ironvault"),
             ("courierretrieve", "in transit"), ("onsiteretrieve", "on site")]
    for i, (state, place) in enumerate(steps):
        with catalog.session() as s:
            cart = find_cartridge(s, "A00001L9")
            move(s, cart, state, T0 + timedelta(days=i), operator="ann", vault_id=vault.id if state == "vault" else None)
        assert where(_cart(catalog), "ironvault") == place
    with catalog.session() as s:
        move(s, find_cartridge(s, "A00001L9"), "mountable", T0 + timedelta(days=9), operator="ann", place=("slot", 7))
    cart = _cart(catalog)
    assert (cart.rotation, where(cart), cart.vault_id) == ("mountable", "slot 7", None)
    with catalog.reader() as s:
        moved = [(m.operator, m.from_location, m.to_location, m.to_rotation) for m in history(s, cart.id)]
    assert moved[0] == ("ann", "slot 3", "in transit", "courier")
    assert moved[1][2] == "vault ironvault"
    assert moved[-1] == ("ann", "on site", "slot 7", "mountable")
    assert len(moved) == 6


def test_a_move_out_of_the_cycle_is_refused_unless_the_operator_says_so(catalog):
    vault = create_vault(catalog, "ironvault")
    with catalog.session() as s:
        with pytest.raises(Conflict, match="cannot go to vault-retrieve from there") as err:
            move(s, find_cartridge(s, "A00001L9"), "vaultretrieve", T0, operator="ann")
    assert "--skip" in err.value.fix
    with catalog.session() as s:  # the operator carried it to the vault by hand
        move(s, find_cartridge(s, "A00001L9"), "vault", T0, operator="ann", vault_id=vault.id, skip=True,
             reason="hand-carried")
    cart = _cart(catalog)
    assert (cart.rotation, cart.location_kind, cart.location_number) == ("vault", "vault", None)
    with catalog.session() as s:
        with pytest.raises(UsageError, match="mountable only in the library"):
            move(s, find_cartridge(s, "A00001L9"), "mountable", T0, operator="ann", skip=True)


def test_a_vault_needs_a_name_and_the_vault_must_exist(catalog):
    with catalog.session() as s:
        with pytest.raises(UsageError, match="none is named"):
            move(s, find_cartridge(s, "A00001L9"), "vault", T0, operator="ann", skip=True)
    with catalog.session() as s:
        with pytest.raises(UsageError, match="does not exist"):
            move(s, find_cartridge(s, "A00001L9"), "courier", T0, operator="ann", vault_id=999)
