"""`tapeline status` (non-zero when a person is needed) and `tapeline alerts [ack ID]`."""

from __future__ import annotations

import click

from appliance.commands.output import Context, table, when
from appliance.errors import CompletedWithWarnings, TapelineError
from appliance.ops.messages import span_text
from appliance.text import plural
from appliance.text import alert_object, alert_state


def register(cli: click.Group) -> None:
    @cli.command()
    @click.pass_obj
    def status(ctx: Context) -> None:
        """Health at a glance. Exits 1 when an open alert is an error, 3 when only warnings are open."""
        st = ctx.client.status()

        def human(st):
            d = st["daemon"]
            click.echo(f"daemon  pid {d['pid']} since {when(d['started'])}, data {d['data_dir']}, catalog {d['catalog']}")
            click.echo(f"jobs    {len(st['jobs']['running'])} running, {len(st['jobs']['queued'])} queued")
            for g in st["groups"]:
                last = g["last_sync"]
                sync = (f"last {last.get('kind', 'sync')} {last['state']} {when(last['finished'])}" if last else
                        f"last point {when(g['latest_point'])}" if g["latest_point"] else "never synced")
                damaged = f", {g['damaged_points']} damaged" if g["damaged_points"] else ""
                click.echo(f"group   {g['name']}{' (paused)' if g['paused'] else ''}: {plural(g['points'], 'point')}"
                           f"{damaged}, newest {when(g['latest_point'])}, {sync}")
            click.echo(f"outbox  {_outbox(st['outbox'])}")
            for a in st["alerts"]:
                click.echo(f"{a['severity']:<7} {a['message']}: {a['fix']}")
            click.echo("needs attention: see the alerts above" if st["needs_attention"] else "all good")
        ctx.emit(st, human)
        severities = {a["severity"] for a in st["alerts"]}
        if "error" in severities:
            raise TapelineError("a person is needed: an alert is open", "read `tapeline alerts` and apply the fixes")
        if "warning" in severities:
            raise CompletedWithWarnings("warnings are open", "read `tapeline alerts`; acknowledge with "
                                        "`tapeline alerts ack ID`")

    @cli.group(invoke_without_command=True)
    @click.option("--all", "include_all", is_flag=True,
                  help="Resolved and acknowledged ones too (kept for jobs.keep_history).")
    @click.pass_context
    def alerts(cctx: click.Context, include_all) -> None:
        """Open alerts with their objects and fixes."""
        if cctx.invoked_subcommand is not None:
            return
        ctx: Context = cctx.obj

        def human(items):
            if not items:
                click.echo("no alerts" if include_all else "no open alerts")
            rows = [["-" if a["id"] is None else a["id"], when(a["time"]), a["severity"], alert_object(a),
                     a["message"], a["fix"]] + ([alert_state(a)] if include_all else []) for a in items]
            table(rows, ["ID", "TIME", "SEVERITY", "OBJECT", "MESSAGE", "FIX"] + (["STATE"] if include_all else []))
        ctx.emit(ctx.client.alerts(include_all), human)

    @alerts.command("ack")
    @click.argument("alert_id", type=int)
    @click.pass_obj
    def ack(ctx: Context, alert_id) -> None:
        """Acknowledge an alert (it leaves `tapeline status`)."""
        ctx.emit(ctx.client.acknowledge(alert_id), lambda a: click.echo(f"alert {a['id']} acknowledged"))


def _outbox(box: dict) -> str:
    """"2 mails, 1 webhook post waiting since TIME (40 min); last delivery error at TIME: ..." or "nothing waiting"."""
    waiting = [plural(box["mail"], "mail")] * bool(box["mail"]) + [plural(box["webhook"], "webhook post")] * bool(
        box["webhook"])
    text = (f"{' and '.join(waiting)} waiting since {when(box['oldest'])} ({span_text(box['oldest_age_s'])})"
            if waiting else "nothing waiting")
    err = box.get("last_error")
    return text + (f"; last delivery error at {when(err['time'])}: {err['message']}" if err else "")
