"""`python -m tui` (and `tapeline tui`, which execs it): the operator console on the daemon's socket.

The socket is found as every client finds it (`appliance.api.client.socket_for`): --data DIR or TAPELINE_DATA, then
--config FILE, then /etc/tapeline/tapeline.toml. A bad configuration is one line and exit 2, as the CLI does.
"""

from __future__ import annotations

import argparse
import sys

from appliance.api.client import socket_for
from appliance.errors import TapelineError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tapeline tui", description="The Tapeline operator console.")
    parser.add_argument("--data", help="development data directory (its daemon's socket); env TAPELINE_DATA")
    parser.add_argument("--config", help="configuration file (default /etc/tapeline/tapeline.toml)")
    parser.add_argument("--socket", help="the daemon's API socket, when given directly")
    args = parser.parse_args(argv)
    try:
        socket_path = args.socket or socket_for(args.config, args.data)
    except TapelineError as exc:
        print(f"tapeline tui: {exc}", file=sys.stderr)
        return exc.exit_code
    from tui.app import TapelineApp  # after the arguments: a usage error does not pay for Textual's import
    TapelineApp(socket_path).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
