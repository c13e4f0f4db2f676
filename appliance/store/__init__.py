"""The disk replica store: content-defined chunks in packs, one manifest per snapshot (docs/store-format.md)."""

from appliance.store.errors import (ChunkDamaged, ChunkMissing, ManifestDamaged, SnapshotNotFound, StoreError,
                                    StoreLocked, StoreNotFound)
from appliance.store.model import Entry, SnapshotInfo
from appliance.store.store import Store, WriteSession

__all__ = ["ChunkDamaged", "ChunkMissing", "Entry", "ManifestDamaged", "SnapshotInfo", "SnapshotNotFound", "Store",
           "StoreError", "StoreLocked", "StoreNotFound", "WriteSession"]
