"""`tapeline up` (development: embedded defaults, a demo group, foreground) and `tapeline serve` (the service).

Both run the same daemon: open the appliance, bind the API socket, serve until SIGINT or SIGTERM, then stop the
scheduler and the job engine (running jobs are cancelled; queued ones stay queued for the next start) and remove
the socket. Logs go to stderr (journald under systemd).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from appliance import config
from appliance.commands.output import Context

log = logging.getLogger("tapeline.daemon")


def setup_logging(level: str) -> None:
    # journald stamps each line itself; a terminal wants the time.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING if level != "debug" else logging.DEBUG)


def _terminate(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_daemon(settings: config.Settings, demo: bool) -> None:
    from appliance.api.app import create_app
    from appliance.api.server import bind_socket, make_server, refuse_if_running
    from appliance.daemon import Appliance
    from appliance.embedded_vtl import EmbeddedLibrary
    from appliance.store.workers import steady_collector

    setup_logging(settings.log_level)
    refuse_if_running(settings.socket_path)
    appliance = Appliance(settings)
    # The service form leaves the simulator to tapeline-vtl.service; `up` runs its own.
    library = EmbeddedLibrary(settings.vtl_dir, settings.vtl_listen) if demo else None
    sock = None
    try:
        started = library is not None and library.start()
        appliance.open()
        steady_collector()  # before any job runs: what a job builds is never frozen
        appliance.start()
        if started:
            appliance.register_library("vtl", library.client_url, library.drive_url)
        if demo:
            appliance.create_demo()
        # A development daemon's socket is under its own data directory, for this user: no operators' group to ask for.
        sock = bind_socket(settings.socket_path, None if demo else settings.operators_group)
        server = make_server(create_app(appliance), settings.log_level)
        # uvicorn restores the previous handlers on its way out and re-raises the signal it caught: make SIGTERM
        # end up here as KeyboardInterrupt too, so the clean stop below runs.
        signal.signal(signal.SIGTERM, _terminate)
        log.info("Tapeline daemon ready: data %s, API socket %s, catalog %s", settings.data_dir,
                 settings.socket_path, appliance.catalog.dialect)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping")
        appliance.stop()
        if library is not None:
            library.stop()
        if sock is not None:
            sock.close()
            try:
                os.unlink(settings.socket_path)
            except FileNotFoundError:
                pass
        log.info("stopped")


def register(cli: click.Group) -> None:
    @cli.command(short_help="Run a development daemon in the foreground (embedded defaults).")
    @click.pass_obj
    def up(ctx: Context) -> None:
        """Run the daemon in the foreground on embedded defaults, with a demo group on first start (Ctrl-C stops).

        Reads no configuration file unless --config is given; --data DIR (or TAPELINE_DATA) puts everything under
        DIR, the API socket included (DIR/run/tapeline.sock)."""
        run_daemon(config.load(ctx.config_file, ctx.data_dir, read_default_file=False), demo=True)

    @cli.command(short_help="Run the daemon as the service does.")
    @click.pass_obj
    def serve(ctx: Context) -> None:
        """Run the daemon as the service does (systemd/tapeline.service), from the configuration file."""
        run_daemon(config.load(ctx.config_file, ctx.data_dir), demo=False)  # the daemon's load: [mail] too
