"""`tapeline report NAME [--format text|csv|html|im] [--days N] [--out FILE] [--mail]`, `tapeline report
restore-needs GROUP --at TIME` and `tapeline report list`.

With --mail the report is mailed (queued in the daemon's outbox) instead of printed; --out still writes the file."""

from __future__ import annotations

import os

import click

from appliance.commands.output import Context, table
from appliance.commands.protect_cmd import AT_FORMS, at_time
from appliance.errors import TapelineError
from appliance.files import write_atomically

FORMATS = ("text", "csv", "html", "im")


def write_report(path: str, content: str) -> None:
    try:
        write_atomically(path, content)
    except OSError as exc:
        raise TapelineError(f"cannot write the report to {path} ({exc.strerror})",
                            "give --out a file in a directory you may write to") from None


def register(cli: click.Group) -> None:
    @cli.command(short_help="Reports: protection, jobs, storage, tape, offsite rotation.")
    @click.argument("name")
    @click.argument("group", required=False)
    @click.option("--at", "at", metavar="TIME", help=f"restore-needs: as of TIME ({AT_FORMS}); default now.")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
                  help="im: the tab-and-tilde file vault companies take (vault lists only).")
    @click.option("--days", type=click.IntRange(1, 3660), default=7, show_default=True,
                  help="The period the report covers, ending now.")
    @click.option("--out", "out", type=click.Path(dir_okay=False), help="Write it to FILE instead of stdout.")
    @click.option("--mail", is_flag=True, help="Mail it to mail.recipients (text, HTML with its chart, CSV attached).")
    @click.pass_obj
    def report(ctx: Context, name, group, at, fmt, days, out, mail) -> None:
        """The report NAME (`tapeline report list` names them) as text, CSV or HTML, on stdout or in --out FILE,
        or mailed with --mail. `restore-needs GROUP [--at TIME]` names the cartridges a restore of GROUP needs."""
        if name == "list":
            ctx.emit(ctx.client.reports(), lambda rs: table([[r["name"], r["description"]] for r in rs],
                                                            ["NAME", "WHAT IT SHOWS"]))
            return
        if mail:
            sent = ctx.client.mail_report(name, days)
            if out:
                write_report(out, ctx.client.report(name, fmt, days)["content"])
                sent["out"] = os.path.abspath(out)
            ctx.emit(sent, lambda a: click.echo(
                f"the {a['name']} report is queued for {', '.join(a['recipients'])}: it goes out as soon as the mail "
                "server takes it (`tapeline alerts` says when it cannot)"
                + (f"; written to {a['out']}" if a.get("out") else "")))
            return
        answer = ctx.client.report(name, fmt, days, group, at_time(at))
        if out:
            write_report(out, answer["content"])
            ctx.emit({**answer, "content": None, "out": os.path.abspath(out)},
                     lambda a: click.echo(f"wrote the {a['name']} report ({a['format']}) to {a['out']}"))
        else:
            ctx.emit(answer, lambda a: click.echo(a["content"], nl=False))
