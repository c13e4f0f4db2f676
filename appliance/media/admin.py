"""What operators ask of the media side (the API's `library`, `drive`, `pool` and `media` routes): checked at once,
answered from the catalog, or queued as a job when it loads cartridges.

Invariants:
- A request that names an unknown library, pool, drive or barcode, or that a cartridge's state refuses (unexpired
  data, foreign data without --force, outside the library), fails here, before any job is queued, with one line
  naming the cause and the fix. The job checks again on the tape itself (the tape is the truth).
- Answers are plain dicts with names (library, pool, media set uuid) rather than catalog ids.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from appliance.catalog import media as cat
from appliance.catalog import moves
from appliance.catalog.models import IN_LIBRARY_LOCATIONS, Cartridge, Drive, Library, Pool
from appliance.catalog.vaults import vault_names
from appliance.config import parse_duration_option
from appliance.errors import Conflict, UsageError
from appliance.media import pools
from appliance.media.crypto import key_fingerprint, load_key
from appliance.media.drives import CartridgeOutside
from appliance.media.service import MediaService, now


def _names(service: MediaService) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    libraries = {lib.id: lib.name for lib in cat.list_libraries(service.catalog)}
    pool_names = {p.id: p.name for p in cat.list_pools(service.catalog)}
    return libraries, pool_names, vault_names(service.catalog)


# --- libraries and drives ---------------------------------------------------------------------------------------


def drive_view(d: Drive, library: str) -> dict:
    return {"library": library, "number": d.number, "url": d.url, "serial": d.serial, "enabled": d.enabled,
            "failures_in_row": d.failures_in_row, "disabled_reason": d.disabled_reason, "cleanings": d.cleanings,
            "last_cleaned": d.last_cleaned}


def library_view(service: MediaService, lib: Library) -> dict:
    carts = cat.list_cartridges(service.catalog, library_id=lib.id)
    states: dict[str, int] = {}
    for c in carts:
        if c.location_kind in IN_LIBRARY_LOCATIONS:
            states[c.state] = states.get(c.state, 0) + 1
    return {"name": lib.name, "changer_url": lib.changer_url, "drive_urls": list(lib.drive_urls),
            "created": lib.created, "last_inventory": lib.last_inventory,
            "drives": [drive_view(d, lib.name) for d in cat.list_drives(service.catalog, lib.id)],
            "cartridges": states, "outside": sorted(c.barcode for c in carts if c.location_kind not in IN_LIBRARY_LOCATIONS)}


def add_library(service: MediaService, name: str, changer_url: str, drive_urls: list[str]) -> dict:
    lib, report = service.add_library(name, changer_url, drive_urls)
    return {**library_view(service, lib), "inventory": report}


def list_libraries(service: MediaService) -> list[dict]:
    return [library_view(service, lib) for lib in cat.list_libraries(service.catalog)]


def show_library(service: MediaService, name: str) -> dict:
    return library_view(service, cat.get_library(service.catalog, name))


def inventory(service: MediaService, name: str, detailed: bool) -> dict:
    """Fast: the changer's barcodes, recorded now. Detailed: a job that reads every label."""
    handle = service.library(name)
    if detailed:
        job_id, coalesced = service.engine.submit("inventory", None, f"library {name}",
                                                  {"library": name, "detailed": True})
        return {"job": job_id, "coalesced": coalesced}
    service.expire(now())
    return {"inventory": handle.inventory(now())}


def list_drives(service: MediaService) -> list[dict]:
    libraries, *_ = _names(service)
    return [drive_view(d, libraries[d.library_id]) for d in cat.list_drives(service.catalog)]


def set_drive_enabled(service: MediaService, library: str, number: int, enabled: bool) -> dict:
    drive = cat.get_drive(service.catalog, library, number)
    changes = {"enabled": enabled, "disabled_reason": None if enabled else "disabled by an operator"}
    if enabled:
        changes["failures_in_row"] = 0
    return drive_view(cat.update_drive(service.catalog, drive.id, **changes), library)


def clean_drive(service: MediaService, library: str, number: int) -> dict:
    cat.get_drive(service.catalog, library, number)
    job_id, coalesced = service.engine.submit("clean", None, f"library {library}", {"library": library,
                                                                                    "drive": number})
    return {"job": job_id, "coalesced": coalesced}


# --- pools ------------------------------------------------------------------------------------------------------


def pool_view(service: MediaService, pool: Pool) -> dict:
    sets = cat.media_sets(service.catalog, pool.id)
    counts = cat.set_counts(service.catalog, [m.id for m in sets])
    carts = cat.list_cartridges(service.catalog, pool_id=pool.id)
    by_set: dict[int, list[str]] = {}
    for c in carts:
        if c.media_set_id is not None:
            by_set.setdefault(c.media_set_id, []).append(c.barcode)
    return {"name": pool.name, "library": cat.library_by_id(service.catalog, pool.library_id).name,
            "retention_seconds": pool.retention_seconds, "allocation": pool.allocation,
            "encrypt_key": pool.encrypt_key, "key_fingerprint": pool.key_fingerprint, "verify": pool.verify,
            "reuse_delay_seconds": pool.reuse_delay_seconds, "created": pool.created,
            "cartridges": {s: sum(c.state == s for c in carts) for s in sorted({c.state for c in carts})},
            "media_sets": [{"uuid": m.uuid, "created": m.created, "closed": m.closed, "expires": m.expires,
                            "retention_seconds": m.retention_seconds, "sets": counts.get(m.id, (0, 0))[0],
                            "bytes": counts.get(m.id, (0, 0))[1], "cartridges": sorted(by_set.get(m.id, []))}
                           for m in sets]}


def create_pool(service: MediaService, name: str, library: str, retention: str | None, allocation: str | None,
                encrypt: str | None, verify: bool, reuse_delay: str | None) -> dict:
    lib = cat.get_library(service.catalog, library)
    retention_seconds = pools.parse_retention(retention) if retention else None
    if encrypt is not None and not os.path.isabs(encrypt):
        raise UsageError(f"--encrypt {encrypt!r} is not an absolute path", "give the key file's full path")
    delay = service.settings.reuse_delay_seconds if reuse_delay is None else (
        0 if reuse_delay.strip() in ("0", "0s") else parse_duration_option("--reuse-delay", reuse_delay))
    pool = cat.create_pool(service.catalog, name, lib.id, retention_seconds,
                           pools.parse_allocation(allocation or "continue"), encrypt,
                           key_fingerprint(load_key(Path(encrypt))) if encrypt else None, verify, delay)
    return pool_view(service, pool)


def list_pools(service: MediaService) -> list[dict]:
    return [pool_view(service, p) for p in cat.list_pools(service.catalog)]


def show_pool(service: MediaService, name: str) -> dict:
    return pool_view(service, cat.get_pool(service.catalog, name))


def change_pool(service: MediaService, name: str, retention: str | None, apply_to_written: bool,
                confirm: bool) -> dict:
    pool = cat.get_pool(service.catalog, name)
    if retention is None:
        raise UsageError("nothing to change", "give --retention DURATION|forever")
    freed = pools.change_retention(service.catalog, pool, pools.parse_retention(retention), apply_to_written,
                                   confirm, now())
    return {**show_pool(service, name), "restamped": freed}


# --- cartridges -------------------------------------------------------------------------------------------------


def cartridge_view(service: MediaService, c: Cartridge, libraries: dict[int, str], pool_names: dict[int, str],
                   vaults: dict[int, str]) -> dict:
    ms = cat.media_set_by_id(service.catalog, c.media_set_id) if c.media_set_id else None
    return {"barcode": c.barcode, "state": c.state, "library": libraries.get(c.library_id),
            "pool": pool_names.get(c.pool_id), "media_set": ms.uuid if ms else None, "sequence": c.sequence,
            "label_uuid": c.label_uuid, "location": c.location_kind, "location_number": c.location_number,
            "where": moves.where(c, vaults.get(c.vault_id)), "vault": vaults.get(c.vault_id),
            "rotation": moves.SHOWN[c.rotation],
            "write_protected": c.write_protected, "bytes_written": c.bytes_written, "mounts": c.mounts,
            "read_errors": c.read_errors, "write_errors": c.write_errors, "last_used": c.last_used,
            "next_file": c.next_file, "expires": c.expires, "cleaning_uses": c.cleaning_uses, "note": c.note,
            "last_check": c.last_check, "last_check_result": c.last_check_result}


def list_media(service: MediaService, pool: str | None, state: str | None) -> list[dict]:
    pool_id = cat.get_pool(service.catalog, pool).id if pool else None
    service.expire(now())
    names = _names(service)
    return [cartridge_view(service, c, *names)
            for c in cat.list_cartridges(service.catalog, pool_id=pool_id, state=state)]


def show_media(service: MediaService, barcode: str) -> dict:
    service.expire(now())
    cart = cat.get_cartridge(service.catalog, barcode)
    names = _names(service)
    sets = [{"uuid": s.uuid, "group": s.group_name, "kind": s.kind, "created": s.created, "state": s.state,
             "bytes": s.bytes} for s in cat.sets_on(service.catalog, cart.id)]
    with service.catalog.reader() as s:
        moved = [{"time": m.time, "operator": m.operator, "from": m.from_location, "to": m.to_location,
                  "from_rotation": moves.SHOWN[m.from_rotation], "to_rotation": moves.SHOWN[m.to_rotation],
                  "reason": m.reason} for m in moves.history(s, cart.id)]
    return {**cartridge_view(service, cart, *names), "sets": sets, "history": moved,
            "holds": service.contents(cart)}


def _check_for_write(service: MediaService, cart: Cartridge, force: bool, doing: str, when: datetime) -> None:
    if cart.state == "cleaning":
        raise UsageError(f"{cart.barcode} is a cleaning cartridge", "give a data cartridge")
    if cart.location_kind not in pools.IN_LIBRARY:
        where = "outside the library" if cart.location_kind == "outside" else \
            f"in mail slot {cart.location_number}: import it into a slot"
        raise CartridgeOutside(cart.barcode, where, cat.library_by_id(service.catalog, cart.library_id).name
                               if cart.library_id else "?")
    if pools.unexpired_data(cart, when):
        raise Conflict(f"cartridge {cart.barcode} holds unexpired data, {service.contents(cart)}: it is never "
                       f"{doing}", f"wait until it expires (`tapeline media show {cart.barcode}`), or choose "
                       "another cartridge")
    held = service.contents(cart) or (f"foreign data ({cart.note})" if cart.state == "foreign" else None)
    if held and not force:
        raise Conflict(f"cartridge {cart.barcode} holds {held}", "rerun with --force if it may be lost")


def label(service: MediaService, barcodes: list[str], pool: str, force: bool) -> dict:
    if not barcodes:
        raise UsageError("no cartridge to label", "give one or more barcodes")
    target = cat.get_pool(service.catalog, pool)
    when = now()
    service.expire(when)
    carts = [cat.get_cartridge(service.catalog, b) for b in dict.fromkeys(barcodes)]
    for c in carts:
        _check_for_write(service, c, force, "relabelled", when)
        if c.library_id != target.library_id:
            raise UsageError(f"cartridge {c.barcode} is not in library "
                             f"'{cat.library_by_id(service.catalog, target.library_id).name}' of pool {pool}",
                             "label it for a pool of its own library, or move it there first")
    job_id, coalesced = service.engine.submit("label", None, f"pool {pool}",
                                              {"barcodes": [c.barcode for c in carts], "pool": pool, "force": force})
    return {"job": job_id, "coalesced": coalesced}


def erase(service: MediaService, barcode: str, force: bool) -> dict:
    cart = cat.get_cartridge(service.catalog, barcode)
    if not force:
        raise UsageError(f"erasing cartridge {barcode} destroys what it holds",
                         f"rerun with --force: `tapeline media erase {barcode} --force`")
    when = now()
    service.expire(when)
    _check_for_write(service, cart, force, "erased", when)
    job_id, coalesced = service.engine.submit("erase", None, f"cartridge {barcode}", {"barcode": barcode})
    return {"job": job_id, "coalesced": coalesced}


# --- loading and unloading a drive -------------------------------------------------------------------------------


def _only_library(service: MediaService, library: str | None) -> str:
    if library is not None:
        return cat.get_library(service.catalog, library).name
    names = [lib.name for lib in cat.list_libraries(service.catalog)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("no library yet", "add one with `tapeline library add NAME CHANGER_URL DRIVE_URL...`")
    raise UsageError(f"which library's drive? there are {', '.join(names)}", "give --library L")


def load(service: MediaService, barcode: str, drive: int | None, library: str | None) -> dict:
    """Queue a job that loads `barcode` into drive `drive` (or any free one) and leaves it there."""
    cart = cat.get_cartridge(service.catalog, barcode)
    home = cat.library_by_id(service.catalog, cart.library_id).name if cart.library_id else None
    if library is not None and library != home:
        cat.get_library(service.catalog, library)  # NotFound for a misspelt name
        raise UsageError(f"cartridge {barcode} is not in library '{library}'"
                         + (f": it is in library '{home}'" if home else ""),
                         f"give --library {home}" if home else "import it into a library first")
    if cart.state == "cleaning":
        raise UsageError(f"{barcode} is a cleaning cartridge",
                         "clean a drive with `tapeline drive clean LIBRARY N`: it loads the cleaning cartridge")
    if cart.location_kind not in pools.IN_LIBRARY:
        where = "outside the library" if cart.location_kind != "mailslot" else \
            f"in mail slot {cart.location_number}: import it into a slot"
        raise CartridgeOutside(barcode, where, home or "?")
    if drive is not None:
        cat.get_drive(service.catalog, home, drive)  # NotFound naming the drives
    if cart.location_kind == "drive" and drive in (None, cart.location_number):
        raise Conflict(f"cartridge {barcode} is already in drive {cart.location_number} of library '{home}'",
                       f"nothing to load; `tapeline media unload {barcode}` puts it back in its slot")
    job_id, coalesced = service.engine.submit("load", None, f"cartridge {barcode}",
                                              {"barcode": barcode, "library": home, "drive": drive})
    return {"job": job_id, "coalesced": coalesced}


def unload(service: MediaService, barcode: str | None, drive: int | None, library: str | None) -> dict:
    """Queue a job that puts the cartridge in a drive (named by its barcode, or the drive's number) back in its
    home slot."""
    if (barcode is None) == (drive is None):
        raise UsageError("give the cartridge's barcode or the drive's number, not both" if barcode else
                         "nothing to unload", "`tapeline media unload BARCODE` or `tapeline media unload --drive N`")
    if barcode is not None:
        cart = cat.get_cartridge(service.catalog, barcode)
        if cart.location_kind != "drive":
            raise UsageError(f"cartridge {barcode} is not in a drive ({moves.where(cart)})",
                             f"nothing to unload (`tapeline media show {barcode}` says where it is)")
        library = cat.library_by_id(service.catalog, cart.library_id).name
        drive = cart.location_number
        what = f"cartridge {barcode}"
    else:
        library = _only_library(service, library)
        cat.get_drive(service.catalog, library, drive)  # NotFound naming the drives
        what = f"library {library}"
    job_id, coalesced = service.engine.submit("unload", None, what,
                                              {"barcode": barcode, "library": library, "drive": drive})
    return {"job": job_id, "coalesced": coalesced}
