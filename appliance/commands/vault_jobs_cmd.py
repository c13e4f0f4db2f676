"""`tapeline vault export | import | plan`: cartridges out of and into the library through its mail slots, and the
disaster recovery plan (docs/vault.md). Added to the `vault` group vault_cmd.py creates."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.commands.output import Context, started
from appliance.commands.vault_cmd import operator_name


def extend_vault(vault: click.Group) -> None:
    wait_opt = click.option("--wait", is_flag=True, help="Block with a progress bar until the job ends.")

    @vault.command(short_help="Offsite-ready cartridges out through the mail slots, in batches.")
    @click.option("--pool", metavar="P", help="Only this pool's cartridges (default: every pool with a vault).")
    @click.option("--case", metavar="NUMBER", help="The case they travel in (default: one per pool and export).")
    @wait_opt
    @click.pass_obj
    def export(ctx: Context, pool, case, wait) -> None:
        """Write the catalog and the configuration to tape, close the pools' open media sets, then eject the
        cartridges that are ready to go offsite (closed and verified) through the mail slots and mark them
        courier. With more cartridges than mail slots the job asks for the mail slots to be emptied and goes on
        by itself once they are. A DR plan is written with each batch (`tapeline vault plan`)."""
        started(ctx, ctx.client.vault_export(pool, case), "vault export", pool or "every rotating pool", wait)

    @vault.command("import", short_help="What an operator put into the mail slots, into free slots.")
    @click.option("--library", metavar="LIB", help="Only this library (default: every library).")
    @click.option("--accept", "accept", multiple=True, metavar="BARCODE",
                  help="Take BARCODE although the catalog has it in a vault (your word: recorded with your name).")
    @wait_opt
    @click.pass_obj
    def import_(ctx: Context, library, accept, wait) -> None:
        """Recognise each cartridge an operator put into a mail slot by its barcode and move it to a free slot:
        an expected return becomes mountable (scratch once its data expired and the pool's reuse delay passed);
        an unknown or foreign one is imported but never written until labelled; one the catalog has in a vault,
        or a barcode seen twice, stays in the mail slot. Each discrepancy raises an alert."""
        answer = ctx.client.vault_import(library, list(accept), operator_name())
        started(ctx, answer, "vault import", library or "every library", wait)

    @vault.command(short_help="The disaster recovery plan: how to rebuild this site from its tapes.")
    @click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
                  help="Write it to FILE (default: print it).")
    @click.pass_obj
    def plan(ctx: Context, out) -> None:
        """Which cartridges hold the newest catalog backup and the newest set of each group (and where they are),
        the configuration, and the commands to run, in order. A copy is kept in the data directory."""
        answer = ctx.client.vault_plan()
        if out:
            Path(out).write_text(answer["text"])
            answer = {**answer, "out": str(Path(out).absolute())}

        def human(a):
            if out:
                click.echo(f"DR plan written to {a['out']} (a copy in {a['path']})")
            else:
                click.echo(a["text"], nl=False)
        ctx.emit(answer, human)
