"""`tapeline vault ...`: vaults, the cartridges sent to them and recalled from them (docs/vault.md).

This module creates the `vault` group; the mail-slot jobs (export, import, plan) and the forecast add their commands
to it from their own modules (`cli.commands["vault"]`), so it is registered before them.
"""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.group(short_help="Offsite rotation: vaults, cartridges sent and recalled.")
    def vault() -> None:
        """Offsite rotation as IBM Spectrum Protect's DRM has it: cartridges leave for a vault once their media set
        is closed and verified, and come back when nothing on them is unexpired."""
