"""`tapeline vault ...` and `tapeline pool set`: vaults, the cartridges sent to them and recalled from them, pool
rotation policies and their dry run (docs/vault.md).

This module creates the `vault` group; the mail-slot jobs (export, import, plan) and the forecast add their commands
to it from their own modules (their `extend_vault`, which cli.py calls once the group exists). Every move is
recorded with the login name of whoever ran the command.
"""

from __future__ import annotations

import getpass

import click

from appliance.commands.output import Context, table, when
from appliance.text import format_duration
from appliance.text import plural


def operator_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _days(seconds: int | None) -> str:
    return "forever" if seconds is None else format_duration(seconds)


def _gfs(tiers: dict) -> str:
    return ", ".join(f"{t}={_days(tiers[t])}" for t in ("daily", "weekly", "monthly", "yearly") if t in tiers) \
        or "none"


def show_vault(v: dict) -> None:
    click.echo(f"vault {v['name']}" + (f" ({v['contact']})" if v["contact"] else ""))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(v["cartridges"].items())) or "no cartridges"
    click.echo(f"  holds        {counts}")
    for case in v.get("cases", []):
        returns = when(case["returns"]) if case["returns"] else "never (holds data kept forever)"
        head = f"case {case['case']}" if case["case"] else "not in a case"
        click.echo(f"  {head}: {plural(len(case['cartridges']), 'cartridge')}"
                   + (f", returns {returns}" if case["case"] else ""))
        for c in case["cartridges"]:
            check = f", checked {when(c['last_check'])}: {c['last_check_result']}" if c["last_check"] else ""
            click.echo(f"    {c['barcode']}  {c['rotation']}, pool {c['pool'] or '-'}, expires "
                       f"{when(c['expires']) if c['expires'] else '-'}{check}")


def show_policy(p: dict) -> None:
    click.echo(f"pool {p['pool']}: " + (f"to vault {p['vault']}" if p["vault"] else "stays on site (no vault)"))
    click.echo(f"  offsite copies  {p['offsite_copies']}")
    click.echo(f"  recall          {'when expired' if p['recall'] == 'expired' else 'at ' + p['recall']}")
    click.echo(f"  gfs             {_gfs(p['gfs'])}")
    click.echo(f"  retention       {_days(p['retention_seconds'])} (sets without a tier)")
    if p["check_sample"]:
        click.echo(f"  checks          {plural(p['check_sample'], 'cartridge')} read back every "
                   f"{_days(p['check_every_seconds'])}")
    for m in p.get("restamped", []):
        click.echo(f"  restamped       {m['media_set']}: expires {when(m['expires_now'])} "
                   f"(was {when(m['expires_was'])})")


def _policy_options(command):
    for option in reversed([
        click.option("--vault", metavar="NAME", help="The vault the pool's sets go to ('' for none)."),
        click.option("--offsite-copies", type=int, metavar="N",
                     help="Media sets of the pool the vault keeps at least (1: each set's own cartridges)."),
        click.option("--recall", metavar="expired|CALENDAR",
                     help="When vaulted cartridges come back: once expired, or at a calendar event after that "
                          "(the courier's run, e.g. 'Fri 10:00')."),
        click.option("--gfs", metavar="daily=7d,weekly=5w,monthly=12m,yearly=7y",
                     help="GFS tiers and their retention (m months, y years; 'none' turns it off)."),
        click.option("--check-sample", type=int, metavar="N", help="Vaulted cartridges recalled for a read-back "
                                                                   "check each round (0: none)."),
        click.option("--check-every", metavar="DURATION", help="How often a round of checks is due (e.g. 90d)."),
    ]):
        command = option(command)
    return command


def _policy(vault, offsite_copies, recall, gfs, check_sample, check_every) -> dict:
    return {"vault": vault, "offsite_copies": offsite_copies, "recall": recall, "gfs": gfs,
            "check_sample": check_sample, "check_every": check_every}


def _listed(rows: list[dict], what: str) -> None:
    if rows:
        click.echo(f"{what}:")
        table([[r["barcode"], r["rotation"], (r["media_set"] or "-")[:8]] for r in rows],
              ["  BARCODE", "ROTATION", "MEDIA SET"])


def show_dry_run(d: dict) -> None:
    click.echo(f"dry run for pool {d['pool']} at {when(d['now'])} (nothing was changed):")
    for key, what in (("free", "freed (nothing unexpired left)"), ("recall", "recalled from the vault"),
                      ("send", "sent offsite"), ("no_longer_sent", "no longer sent offsite"),
                      ("keep", "kept (unexpired data)")):
        _listed(d[key], what)
    for m in d["media_sets"]:
        click.echo(f"media set {m['media_set'][:8]}{' (' + m['tier'] + ')' if m['tier'] else ''}: expires "
                   f"{when(m['expires_now']) if m['expires_now'] else 'never'} (now "
                   f"{when(m['expires_was']) if m['expires_was'] else 'never'})")
    if d["lost_points"]:
        click.echo(f"{plural(len(d['lost_points']), 'recovery point')} would then exist nowhere else:")
        for p in d["lost_points"]:
            click.echo(f"  {p['group']} {('point ' + str(p['point'])) if p['point'] else p['kind'] + ' set'} of "
                       f"{when(p['time'])} (set {p['set'][:8]} on {', '.join(p['cartridges'])})")
    else:
        click.echo("no recovery point would be lost")
    if not any(d[k] for k in ("free", "recall", "send", "no_longer_sent", "media_sets")):
        click.echo("the change would move or free nothing")


def register(cli: click.Group) -> None:
    @cli.group(short_help="Offsite rotation: vaults, cartridges sent and recalled.")
    def vault() -> None:
        """Offsite rotation as IBM Spectrum Protect's DRM has it: cartridges leave for a vault once their media set
        is closed and verified, and come back when nothing on them is unexpired (docs/vault.md)."""

    @vault.command("create")
    @click.argument("name")
    @click.option("--contact", default="", metavar="TEXT", help="Who to call there (name, phone, account).")
    @click.pass_obj
    def create(ctx: Context, name, contact) -> None:
        """Create vault NAME: an offsite site that keeps cartridges."""
        ctx.emit(ctx.client.create_vault(name, contact), lambda v: (click.echo(f"created vault {v['name']}")))

    @vault.command("list")
    @click.pass_obj
    def list_(ctx: Context) -> None:
        """Every vault with what it holds."""
        def human(vs):
            if not vs:
                click.echo("no vaults; create one with `tapeline vault create NAME --contact TEXT`")
            table([[v["name"], v["contact"] or "-", ", ".join(f"{n} {s}" for s, n in sorted(v["cartridges"].items()))
                    or "empty"] for v in vs], ["NAME", "CONTACT", "CARTRIDGES"])
        ctx.emit(ctx.client.vaults(), human)

    @vault.command("show")
    @click.argument("name")
    @click.pass_obj
    def show(ctx: Context, name) -> None:
        """What vault NAME holds, by case, with each case's return date."""
        ctx.emit(ctx.client.vault(name), show_vault)

    @vault.command("policy")
    @click.argument("pool", required=False)
    @click.pass_obj
    def policy(ctx: Context, pool) -> None:
        """The rotation policy of POOL (or of every pool): set it with `tapeline pool set`."""
        rows = ctx.client.vault_policies(pool)
        ctx.emit(rows, lambda ps: [show_policy(p) for p in ps] or click.echo("no pools"))

    @vault.command("ready")
    @click.option("--pool", metavar="P", help="Only this pool's cartridges.")
    @click.pass_obj
    def ready(ctx: Context, pool) -> None:
        """The cartridges offsite-ready now (closed, verified media sets): what `vault export` takes."""
        def human(cs):
            if not cs:
                click.echo("nothing is offsite-ready")
            table([[c["barcode"], c["pool"], c["vault"], c["where"], when(c["expires"]) if c["expires"] else "never"]
                   for c in cs], ["BARCODE", "POOL", "VAULT", "LOCATION", "EXPIRES"])
        ctx.emit(ctx.client.offsite_ready(pool), human)

    @vault.command("receive")
    @click.argument("items", metavar="BARCODE|CASE...", nargs=-1, required=True)
    @click.option("--vault", "vault_name", required=True, metavar="NAME", help="The vault that received them.")
    @click.option("--skip", is_flag=True, help="Receive a cartridge the catalog did not send there (recorded).")
    @click.pass_obj
    def receive(ctx: Context, items, vault_name, skip) -> None:
        """The vault confirms these cartridges or cases arrived (courier -> vault). A discrepancy (never sent, sent
        elsewhere, given twice, unknown) refuses the whole receipt and raises an alert."""
        def human(r):
            click.echo(f"vault {r['vault']} received {plural(len(r['received']), 'cartridge')}: "
                       f"{', '.join(r['received'])}")
            for case in r["cases"]:
                click.echo(f"  case {case['case']}: returns "
                           f"{when(case['returns']) if case['returns'] else 'never'}")
        ctx.emit(ctx.client.vault_receive(list(items), vault_name, operator_name(), skip), human)

    @vault.command("recall")
    @click.argument("items", metavar="[BARCODE|CASE...]", nargs=-1)
    @click.option("--pool", metavar="P", help="Only this pool's cartridges.")
    @click.option("--force", is_flag=True, help="Recall named cartridges even if they hold the only offsite copy "
                                                "of unexpired points.")
    @click.pass_obj
    def recall(ctx: Context, items, pool, force) -> None:
        """Put cartridges on the vault's pick list (vault -> vault-retrieve): those due back (nothing unexpired,
        at the pool's recall) and this round's sampled checks, or the ones named."""
        def human(r):
            if not r["recalled"]:
                click.echo("nothing is due back")
            table([[c["barcode"], c["vault"] or "-", c["case"] or "-", c["pool"] or "-", c["reason"]]
                   for c in r["recalled"]], ["BARCODE", "VAULT", "CASE", "POOL", "WHY"])
            if r["forced_points"]:
                click.echo(f"the vault no longer holds {plural(len(r['forced_points']), 'unexpired point')} "
                           "(--force)")
        ctx.emit(ctx.client.vault_recall(operator_name(), pool, list(items), force), human)

    @vault.command("sent-back")
    @click.argument("items", metavar="BARCODE|CASE...", nargs=-1, required=True)
    @click.pass_obj
    def sent_back(ctx: Context, items) -> None:
        """The courier took these recalled cartridges or cases from the vault (vault-retrieve -> courier-retrieve);
        `vault import` takes them in when they are put into the mail slots."""
        ctx.emit(ctx.client.vault_sent_back(list(items), operator_name()),
                 lambda r: click.echo(f"on the way back: {', '.join(r['sent_back'])}"))

    @vault.command("dry-run")
    @click.argument("pool")
    @click.option("--retention", metavar="30d|forever", help="A new retention for sets without a GFS tier.")
    @_policy_options
    @click.pass_obj
    def dry_run(ctx: Context, pool, retention, **policy) -> None:
        """What a new policy for POOL would free, recall, send or keep now, and which recovery points would then
        exist nowhere else. Nothing is changed."""
        ctx.emit(ctx.client.vault_dry_run(pool, retention=retention, **_policy(**policy)), show_dry_run)


def extend_pool(pool_group: click.Group) -> None:
    """`tapeline pool set`: a pool's rotation policy."""
    @pool_group.command("set")
    @click.argument("name")
    @_policy_options
    @click.option("--confirm", is_flag=True, help="Let written sets expire sooner (see `tapeline vault dry-run`).")
    @click.pass_obj
    def set_(ctx: Context, name, confirm, **policy) -> None:
        """Set pool NAME's offsite rotation: its vault, copies offsite, recall, GFS tiers, sampled checks. Written
        sets take a longer retention at once; a shorter one needs --confirm (run the dry run first)."""
        ctx.emit(ctx.client.pool_rotation(name, confirm=confirm, **_policy(**policy)), show_policy)
