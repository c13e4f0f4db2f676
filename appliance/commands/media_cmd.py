"""`tapeline library | drive | pool | media ...`: tape libraries, their drives, media pools and cartridges.

One function registers each group; the commands that load cartridges (detailed inventory, label, erase, clean)
queue a job and take `--wait`, as `tapeline sync` does. The tape jobs (`tapeline tape ...`, `media verify`,
`media rebuild`) add their commands to the same `media` group through `register_media`'s return value.
"""

from __future__ import annotations

import os

import click

from appliance.commands.output import Context, size, started, table, when
from appliance.text import format_duration
from appliance.text import plural


def _retention(seconds: int | None) -> str:
    return "forever" if seconds is None else format_duration(seconds)


def _counts(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"


def _inventory_line(report: dict) -> str:
    parts = [f"library {report['library']}: {plural(report['cartridges'], 'data cartridge')}"]
    if report["new"]:
        more = ", ..." if len(report["new"]) > 8 else ""
        parts.append(f"{len(report['new'])} new ({', '.join(report['new'][:8])}{more})")
    if report["outside"]:
        parts.append(f"no longer in the library: {', '.join(report['outside'])}")
    if report["cleaning"]:
        parts.append(f"cleaning: {', '.join(report['cleaning'])}")
    if report["without_barcode"]:
        parts.append(f"without a barcode: {', '.join(report['without_barcode'])} (--detailed reads them)")
    return "; ".join(parts)


# --- library ----------------------------------------------------------------------------------------------------


def show_library(lib: dict) -> None:
    click.echo(f"library {lib['name']}")
    click.echo(f"  changer         {lib['changer_url']}")
    click.echo(f"  last inventory  {when(lib['last_inventory'])}")
    click.echo(f"  cartridges      {_counts(lib['cartridges'])}")
    if lib["outside"]:
        click.echo(f"  outside         {', '.join(lib['outside'])}")
    for d in lib["drives"]:
        state = "enabled" if d["enabled"] else f"disabled ({d['disabled_reason']})"
        click.echo(f"  drive {d['number']}         {d['url']} serial {d['serial'] or '-'}, {state}")


def register_library(cli: click.Group) -> click.Group:
    @cli.group(short_help="Tape libraries: a changer and its drives.")
    def library() -> None:
        """Tape libraries: a changer URL plus its drives' URLs (`tapeline up` registers its own as `vtl`)."""

    @library.command("add")
    @click.argument("name")
    @click.argument("changer_url")
    @click.argument("drive_urls", nargs=-1, required=True)
    @click.pass_obj
    def add(ctx: Context, name, changer_url, drive_urls) -> None:
        """Register library NAME: its changer and its drives (matched to the changer's drives by serial number
        where the changer reports them, else in the order given), then take a fast inventory."""
        lib = ctx.client.add_library(name, changer_url, list(drive_urls))
        ctx.emit(lib, lambda lib: (click.echo(f"added library {lib['name']}"), show_library(lib),
                                   click.echo(_inventory_line(lib["inventory"]))))

    @library.command("list")
    @click.pass_obj
    def list_(ctx: Context) -> None:
        """Every library with its drives and cartridges."""
        def human(libs):
            if not libs:
                click.echo("no libraries; add one with `tapeline library add NAME CHANGER_URL DRIVE_URL...`")
            table([[lib["name"], len(lib["drives"]), sum(lib["cartridges"].values()), when(lib["last_inventory"]),
                    lib["changer_url"]] for lib in libs], ["NAME", "DRIVES", "CARTRIDGES", "INVENTORY", "CHANGER"])
        ctx.emit(ctx.client.libraries(), human)

    @library.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(ctx: Context, name) -> None:
        """One library: its changer, drives and cartridges by state."""
        ctx.emit(ctx.client.library(name), show_library)

    @library.command("inventory")
    @click.argument("name")
    @click.option("--detailed", is_flag=True, help="Load every cartridge and read its label (a job).")
    @click.option("--wait", is_flag=True, help="With --detailed: block until the job ends.")
    @click.pass_obj
    def inventory(ctx: Context, name, detailed, wait) -> None:
        """Which cartridges the library holds: the barcodes its changer reads (at once), or with --detailed what
        each tape holds (blank tapes become scratch; data Tapeline did not write is marked foreign)."""
        answer = ctx.client.inventory(name, detailed)
        if detailed:
            started(ctx, answer, "detailed inventory", f"library {name}", wait)
        else:
            ctx.emit(answer, lambda a: click.echo(_inventory_line(a["inventory"])))

    return library


# --- drive ------------------------------------------------------------------------------------------------------


def _drive_line(d: dict) -> str:
    state = "enabled" if d["enabled"] else f"disabled ({d['disabled_reason']})"
    return f"drive {d['number']} of library {d['library']}: {state}"


def register_drive(cli: click.Group) -> click.Group:
    @cli.group(short_help="Tape drives: list, clean, take out of service, put back.")
    def drive() -> None:
        """Tape drives of every library."""

    @drive.command("list")
    @click.pass_obj
    def list_(ctx: Context) -> None:
        """Every drive: in service or not, failures in a row, cleanings."""
        def human(drives):
            if not drives:
                click.echo("no drives; add a library with `tapeline library add NAME CHANGER_URL DRIVE_URL...`")
            table([[d["library"], d["number"], "enabled" if d["enabled"] else "disabled", d["serial"] or "-",
                    d["failures_in_row"], d["cleanings"], when(d["last_cleaned"]), d["url"]] for d in drives],
                  ["LIBRARY", "DRIVE", "STATE", "SERIAL", "FAILURES", "CLEANINGS", "CLEANED", "URL"])
        ctx.emit(ctx.client.drives(), human)

    @drive.command("clean")
    @click.argument("library")
    @click.argument("number", metavar="DRIVE", type=click.IntRange(min=0))
    @click.option("--wait", is_flag=True, help="Block until the cleaning ends.")
    @click.pass_obj
    def clean(ctx: Context, library, number, wait) -> None:
        """Load the library's cleaning cartridge into DRIVE (a job; its use is counted)."""
        started(ctx, ctx.client.drive_action(library, number, "clean"), "cleaning",
                f"drive {number} of library {library}", wait)

    @drive.command("enable")
    @click.argument("library")
    @click.argument("number", metavar="DRIVE", type=click.IntRange(min=0))
    @click.pass_obj
    def enable(ctx: Context, library, number) -> None:
        """Put DRIVE back in service (its failure count starts again)."""
        ctx.emit(ctx.client.drive_action(library, number, "enable"), lambda d: click.echo(_drive_line(d)))

    @drive.command("disable")
    @click.argument("library")
    @click.argument("number", metavar="DRIVE", type=click.IntRange(min=0))
    @click.pass_obj
    def disable(ctx: Context, library, number) -> None:
        """Take DRIVE out of service: no job uses it until enabled."""
        ctx.emit(ctx.client.drive_action(library, number, "disable"), lambda d: click.echo(_drive_line(d)))

    return drive


# --- pool -------------------------------------------------------------------------------------------------------


def show_pool(p: dict) -> None:
    click.echo(f"pool {p['name']}")
    click.echo(f"  library      {p['library']}")
    click.echo(f"  retention    {_retention(p['retention_seconds'])}")
    click.echo(f"  allocation   {p['allocation']}")
    click.echo(f"  reuse delay  {_retention(p['reuse_delay_seconds']) if p['reuse_delay_seconds'] else 'none'}")
    click.echo(f"  verify       {'yes' if p['verify'] else 'no'}")
    if p["encrypt_key"]:
        click.echo(f"  encryption   key {p['encrypt_key']} (fingerprint {p['key_fingerprint'][:16]}...)")
    click.echo(f"  cartridges   {_counts(p['cartridges'])}")
    for m in p["media_sets"]:
        state = "open" if m["closed"] is None else f"closed {when(m['closed'])}, expires " + (
            when(m["expires"]) if m["expires"] else "never")
        click.echo(f"  media set    {m['uuid']}: {plural(m['sets'], 'set')}, {size(m['bytes'])}, {state}, "
                   f"on {', '.join(m['cartridges']) or 'no cartridge yet'}")


def register_pool(cli: click.Group) -> click.Group:
    @cli.group(short_help="Media pools: allocation and retention of cartridges.")
    def pool() -> None:
        """Media pools: which cartridges a tape job writes, how media sets are allocated and how long they stay."""

    @pool.command("create")
    @click.argument("name")
    @click.option("--library", required=True, metavar="LIB", help="The library whose cartridges the pool uses.")
    @click.option("--retention", metavar="30d|forever", help="How long written sets are kept (default: forever).")
    @click.option("--allocation", metavar="continue|always|CALENDAR",
                  help="Append to the open media set (continue, the default), a new set per job (always), or a "
                       "new set once a calendar event passes (weekly, daily, 'Sat 18:00', 'Mon..Fri 02:00').")
    @click.option("--encrypt", metavar="KEYFILE", help="Encrypt with this key file (a lost key is lost data).")
    @click.option("--no-verify", is_flag=True, help="Do not read sets back after writing them.")
    @click.option("--reuse-delay", metavar="DURATION",
                  help="How long expired cartridges wait before returning to scratch (default: media.reuse_delay).")
    @click.pass_obj
    def create(ctx: Context, name, library, retention, allocation, encrypt, no_verify, reuse_delay) -> None:
        """Create pool NAME over library LIB."""
        p = ctx.client.create_pool(name, library, retention, allocation,
                                   os.path.abspath(encrypt) if encrypt else None, not no_verify, reuse_delay)
        ctx.emit(p, lambda p: (click.echo(f"created pool {p['name']}"), show_pool(p)))

    @pool.command("list")
    @click.pass_obj
    def list_(ctx: Context) -> None:
        """Every pool."""
        def human(ps):
            if not ps:
                click.echo("no pools; create one with `tapeline pool create NAME --library LIB`")
            table([[p["name"], p["library"], _retention(p["retention_seconds"]), p["allocation"],
                    "yes" if p["encrypt_key"] else "no", _counts(p["cartridges"])] for p in ps],
                  ["NAME", "LIBRARY", "RETENTION", "ALLOCATION", "ENCRYPTED", "CARTRIDGES"])
        ctx.emit(ctx.client.pools(), human)

    @pool.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(ctx: Context, name) -> None:
        """One pool: its settings, cartridges and media sets."""
        ctx.emit(ctx.client.pool(name), show_pool)

    @pool.command("change")
    @click.argument("name")
    @click.option("--retention", required=True, metavar="30d|forever", help="The retention of sets written from now.")
    @click.option("--apply-to-written", is_flag=True, help="Restamp the sets already written too.")
    @click.option("--confirm", is_flag=True, help="With --apply-to-written: free the sets that would expire sooner.")
    @click.pass_obj
    def change(ctx: Context, name, retention, apply_to_written, confirm) -> None:
        """Change a pool's retention. Sets already written keep theirs unless --apply-to-written; shortening them
        is refused with the list of what it frees until --confirm."""
        p = ctx.client.change_pool(name, retention, apply_to_written, confirm)

        def human(p):
            show_pool(p)
            for m in p["restamped"]:
                click.echo(f"  restamped    {m['media_set']}: expires {when(m['expires_now'])} "
                           f"(was {when(m['expires_was'])})")
        ctx.emit(p, human)

    return pool


# --- media ------------------------------------------------------------------------------------------------------


def show_cartridge(c: dict) -> None:
    click.echo(f"cartridge {c['barcode']}: {c['state']}{' (write-protected)' if c['write_protected'] else ''}")
    click.echo(f"  location     {c['where']}{', library ' + c['library'] if c['library'] else ''}, "
               f"rotation {c['rotation']}")
    click.echo(f"  pool         {c['pool'] or '-'}")
    if c["media_set"]:
        click.echo(f"  media set    {c['media_set']} (tape {c['sequence']}), next set at tape file {c['next_file']}")
    click.echo(f"  expires      {when(c['expires']) if c['expires'] else ('never' if c['media_set'] else '-')}")
    click.echo(f"  written      {size(c['bytes_written'])}, {plural(c['mounts'], 'mount')}, "
               f"{c['read_errors']} read errors, {c['write_errors']} write errors, last used {when(c['last_used'])}")
    if c.get("holds"):
        click.echo(f"  holds        {c['holds']}")
    if c.get("last_check"):
        click.echo(f"  read back    {when(c['last_check'])}: {c['last_check_result']}")
    if c["note"]:
        click.echo(f"  note         {c['note']}")
    for s in c.get("sets", []):
        click.echo(f"  set          {s['uuid']} {s['kind']} of {s['group']}, {when(s['created'])}, {s['state']}, "
                   f"{size(s['bytes'])}")
    for m in c.get("history", []):
        rotation = f", {m['from_rotation']} -> {m['to_rotation']}" if m["from_rotation"] != m["to_rotation"] else ""
        click.echo(f"  moved        {when(m['time'])} by {m['operator']}: {m['from']} -> {m['to']}{rotation}"
                   f"{' (' + m['reason'] + ')' if m['reason'] else ''}")


def register_media(cli: click.Group) -> click.Group:
    @cli.group(short_help="Cartridges: list, label, erase, verify, rebuild the catalog.")
    def media() -> None:
        """Cartridges: their state, pool, media set, location and history."""

    @media.command("list")
    @click.option("--pool", metavar="P", help="Only this pool's cartridges.")
    @click.option("--state", metavar="S", help="Only cartridges in this state (blank, scratch, allocated, full, "
                                               "expired, retired, damaged, cleaning, foreign).")
    @click.pass_obj
    def list_(ctx: Context, pool, state) -> None:
        """Every cartridge the catalog knows."""
        def human(cs):
            if not cs:
                click.echo("no cartridges; see `tapeline library inventory LIB`" if not (pool or state)
                           else "no cartridge matches")
            table([[c["barcode"], c["state"] + (" (wp)" if c["write_protected"] else ""), c["pool"] or "-",
                    (c["media_set"] or "-")[:8], c["where"], c["rotation"],
                    size(c["bytes_written"]), when(c["expires"]) if c["expires"] else "-"] for c in cs],
                  ["BARCODE", "STATE", "POOL", "MEDIA SET", "LOCATION", "ROTATION", "WRITTEN", "EXPIRES"])
        ctx.emit(ctx.client.media(pool, state), human)

    @media.command("show")
    @click.argument("barcode")
    @click.pass_obj
    def show(ctx: Context, barcode) -> None:
        """One cartridge: state, pool, media set, location, what it holds."""
        ctx.emit(ctx.client.cartridge(barcode), show_cartridge)

    @media.command("label")
    @click.argument("barcodes", metavar="BARCODE...", nargs=-1, required=True)
    @click.option("--pool", required=True, metavar="P", help="The pool the cartridges are for.")
    @click.option("--force", is_flag=True, help="Label over data (foreign, or expired): it is lost.")
    @click.option("--wait", is_flag=True, help="Block until the cartridges are labelled.")
    @click.pass_obj
    def label(ctx: Context, barcodes, pool, force, wait) -> None:
        """Write a Tapeline label for pool P on each cartridge (a job). A cartridge holding data is refused unless
        --force (the refusal says what would be lost); one holding unexpired data is always refused."""
        started(ctx, ctx.client.label(list(barcodes), pool, force), "labelling",
                plural(len(barcodes), "cartridge"), wait)

    @media.command("erase")
    @click.argument("barcode")
    @click.option("--force", is_flag=True, help="Required: everything on the cartridge is lost.")
    @click.option("--wait", is_flag=True, help="Block until it is erased.")
    @click.pass_obj
    def erase(ctx: Context, barcode, force, wait) -> None:
        """Erase a cartridge (a job) and forget what it held; never one holding unexpired data."""
        started(ctx, ctx.client.erase(barcode, force), "erase", f"cartridge {barcode}", wait)

    @media.command("load")
    @click.argument("barcode")
    @click.option("--drive", type=click.IntRange(0), metavar="N", help="This drive (default: any free one).")
    @click.option("--library", metavar="L", help="The cartridge's library (a check).")
    @click.option("--wait", is_flag=True, help="Block until it is loaded.")
    @click.pass_obj
    def load(ctx: Context, barcode, drive, library, wait) -> None:
        """Load a cartridge into a drive and leave it there (a job); the next job needing the drive puts it back
        in its slot. A cartridge that is not Tapeline's is loaded too: the result says what it holds."""
        started(ctx, ctx.client.load(barcode, drive, library), "load", f"cartridge {barcode}", wait)

    @media.command("unload")
    @click.argument("barcode", required=False)
    @click.option("--drive", type=click.IntRange(0), metavar="N", help="The cartridge in this drive.")
    @click.option("--library", metavar="L", help="The drive's library (default: the only one).")
    @click.option("--wait", is_flag=True, help="Block until it is back in its slot.")
    @click.pass_obj
    def unload(ctx: Context, barcode, drive, library, wait) -> None:
        """Put the cartridge BARCODE (or the one in drive N) back in its home slot (a job)."""
        started(ctx, ctx.client.unload(barcode, drive, library), "unload",
                f"cartridge {barcode}" if barcode else f"drive {drive}", wait)

    return media


def register(cli: click.Group) -> None:
    register_library(cli)
    register_drive(cli)
    register_pool(cli)
    register_media(cli)
