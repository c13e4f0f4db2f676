"""Offsite rotation: policies, moves to and from vaults, exports and imports, reports (docs/vault.md)."""
