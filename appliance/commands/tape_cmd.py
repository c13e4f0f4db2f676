"""`tapeline tape backup | sets | restore`: recovery points to tape and back."""

from __future__ import annotations

import os
import sys

import click

from appliance.commands.output import Context, size, started, table, when
from appliance.commands.protect_cmd import AT_FORMS, at_time, point_choice
from appliance.errors import UsageError


wait_opt = click.option("--wait", is_flag=True, help="Block with a progress bar until the job ends.")


def register(cli: click.Group) -> None:
    @cli.group()
    def tape() -> None:
        """Recovery points to tape (D2D2T, D2T) and back."""

    @tape.command(short_help="Write a recovery point of GROUP to tape.")
    @click.argument("group")
    @click.option("--pool", required=True, metavar="POOL", help="Media pool to write to (`tapeline pool list`).")
    @click.option("--point", "point_id", metavar="ID",
                  help="Recovery point (`tapeline points GROUP`, latest, latest-1, ...); default the newest.")
    @click.option("--incremental", is_flag=True,
                  help="Only the files changed since the group's last set in the pool (the set lists the rest).")
    @click.option("--direct", is_flag=True, help="Read the group's sources directly (D2T), not the disk replica.")
    @wait_opt
    @click.pass_obj
    def backup(ctx: Context, group, pool, point_id, incremental, direct, wait) -> None:
        """Write a recovery point of GROUP (default: its newest) to a cartridge of POOL, full or incremental, or
        the group's sources read directly with --direct; then read it back to verify it (unless the pool says
        --no-verify)."""
        if incremental and direct:
            raise UsageError("--incremental and --direct both given", "a direct (D2T) set is always full: give one")
        if direct and point_id:
            raise UsageError("--point and --direct both given",
                             "--direct reads the sources as they are now; --point names a replica point")
        kind = "direct" if direct else "incremental" if incremental else "full"
        answer = ctx.client.tape_backup(group, pool, point_choice(ctx, group, point_id), kind)
        if not ctx.as_json and not wait and answer.get("point"):
            p = answer["point"]
            click.echo(f"writing recovery point {p['id']} ({when(p['time'])}) of {group} to pool {pool}")
        started(ctx, answer, "tape backup", group, wait)

    @tape.command(short_help="Tape sets, of one group or all.")
    @click.argument("group", required=False)
    @click.pass_obj
    def sets(ctx: Context, group) -> None:
        """Tape sets (of GROUP, or of every group): point, pool, cartridges and tape file numbers, size, state."""
        def human(rows):
            if not rows:
                click.echo("no tape set yet; write one with `tapeline tape backup GROUP --pool POOL --wait`")
                return
            table([[s["id"], s["group"], when(s["created"]), s["kind"], s["point"] or "-", s["pool"],
                    " ".join(f"{c['barcode']}:{c['tape_file']}" for c in s["cartridges"]), s["files"],
                    size(s["bytes"]), s["state"] + (" verified" if s.get("verified") else "")] for s in rows],
                  ["ID", "GROUP", "TIME", "KIND", "POINT", "POOL", "CARTRIDGE:FILE", "FILES", "SIZE", "STATE"])
        ctx.emit(ctx.client.tape_sets(group), human)

    @tape.command(short_help="Restore files of GROUP from tape.")
    @click.argument("group")
    @click.argument("paths", nargs=-1, metavar="[PATH]...")
    @click.option("--set", "set_id", type=int, metavar="ID", help="Tape set (`tapeline tape sets GROUP`).")
    @click.option("--at", "at", metavar="TIME", help=f"The newest set made at or before TIME: {AT_FORMS}.")
    @click.option("--to", "to", required=True, metavar="DIR", help="Directory to restore into.")
    @click.option("--overwrite", is_flag=True, help="Replace files that already exist in DIR.")
    @wait_opt
    @click.pass_obj
    def restore(ctx: Context, group, paths, set_id, at, to, overwrite, wait) -> None:
        """Restore files of GROUP (PATHs by their full original path; none: the whole set) from a tape set into
        --to DIR, under their original paths. Without --set or --at: the group's newest set. Cartridges outside
        the library are asked for (the job waits, with an alert naming them)."""
        if set_id is not None and at:
            raise UsageError("--set and --at both given", "give one of them (or neither: the newest set)")
        answer = ctx.client.tape_restore(group, os.path.abspath(to), set_id, at_time(at),
                                         [os.path.abspath(p) for p in paths], overwrite)
        if not ctx.as_json and not wait:
            s = answer["set"]
            needs = ", ".join(c["barcode"] for c in s["cartridges"])
            click.echo(f"restoring from tape set {s['id']} ({when(s['created'])}, on {needs}) into "
                       f"{os.path.abspath(to)}")
        started(ctx, answer, "tape restore", group, wait)


def extend_group(group: click.Group) -> None:
    """`tapeline group set`: a group's tape schedule."""
    @group.command("set", short_help="Set group NAME's tape schedule.")
    @click.argument("name")
    @click.option("--tape-pool", "pool", required=True, metavar="P", help="Media pool the scheduled sets go to.")
    @click.option("--tape-full", "full", required=True, metavar="CALENDAR",
                  help="When full sets are written: hourly, daily, weekly, monthly, or [Mon..Fri] HH:MM.")
    @click.option("--tape-incremental", "incremental", metavar="CALENDAR",
                  help="When incremental sets are written (the files changed since the group's last set).")
    @click.pass_obj
    def set_(ctx: Context, name, pool, full, incremental) -> None:
        """Set group NAME's tape schedule: its newest recovery point goes to tape pool P as a full set on
        --tape-full and as an incremental one on --tape-incremental (e.g. `--tape-full "Sat 22:00"
        --tape-incremental "Mon..Fri 22:00"`)."""
        answer = ctx.client.tape_policy(name, pool, full, incremental)
        ctx.emit(answer, lambda p: click.echo(
            f"group {name}: full sets to pool {p['pool']} on {p['full']}"
            + (f", incremental ones on {p['incremental']}" if p.get("incremental") else "")))


def extend_media(media: click.Group) -> None:
    """media_cmd's group: verify and rebuild read tapes as the tape jobs do."""

    @media.command(short_help="Read a whole cartridge and check every frame.")
    @click.argument("barcode")
    @wait_opt
    @click.pass_obj
    def verify(ctx: Context, barcode, wait) -> None:
        """Read cartridge BARCODE whole: its labels, every frame of every set (checked against its hash), its index
        and catalog files."""
        started(ctx, ctx.client.media_verify(barcode), "media verify", barcode, wait)

    @media.command(short_help="Rebuild the tape catalog from a library's cartridges.")
    @click.option("--library", required=True, metavar="LIB", help="The library whose cartridges are read.")
    @wait_opt
    @click.pass_obj
    def rebuild(ctx: Context, library, wait) -> None:
        """Read the labels and index files (never the data) of every cartridge in library LIB and rebuild the tape
        catalog from them: after the catalog and the disk store were lost, `tapeline tape restore` works again."""
        started(ctx, ctx.client.media_rebuild(library), "media rebuild", library, wait)

    @media.command(short_help="Decrypt an encrypted set's tape file (stdin to stdout), for the standard tools.")
    @click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), metavar="KEYFILE",
                  help="The pool's key file.")
    def decrypt(key_file) -> None:
        """Turn an encrypted set's tape file into the plain zstd stream, with no daemon: `dd if=/dev/nst0 bs=256k |
        tapeline media decrypt --key KEYFILE | zstd -dc | tar -x`."""
        from pathlib import Path

        from appliance.media.crypto import decrypt_stream, load_key
        decrypt_stream(load_key(Path(key_file)), sys.stdin.buffer, sys.stdout.buffer)

    @media.command("new-key", short_help="Make a key file for an encrypted pool.")
    @click.argument("key_file", type=click.Path(dir_okay=False), metavar="KEYFILE")
    @click.pass_obj
    def new_key(ctx: Context, key_file) -> None:
        """Write a new key of 32 random bytes to KEYFILE (mode 0600, never over an existing file), for `tapeline
        pool create NAME --encrypt KEYFILE`. Keep a copy away from the appliance and its tapes: a lost key is lost
        data, nothing recovers a set without it."""
        from pathlib import Path

        from appliance.media.crypto import create_key_file
        fingerprint = create_key_file(Path(key_file).absolute())
        ctx.emit({"key_file": str(Path(key_file).absolute()), "fingerprint": fingerprint},
                 lambda k: click.echo(f"key {k['fingerprint']} written to {k['key_file']}: keep a copy offsite; "
                                      "without it the sets it seals cannot be read"))
