"""Errors of the replica store. Each message names the cause and the fix on one line."""

from appliance.errors import NotFound, TapelineError


class StoreError(TapelineError):
    """A store that cannot be used as it is (bad format, damaged file)."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message, fix)


class StoreNotFound(StoreError, NotFound):
    def __init__(self, root: object) -> None:
        super().__init__(f"no replica store at {root}", "create it by starting the daemon, or check the data "
                                                         "directory (store.path)")


class StoreLocked(StoreError):
    def __init__(self, root: object, holder: str) -> None:
        super().__init__(f"replica store {root} is in use by another process ({holder})",
                         "stop that process or wait for it")


class SnapshotNotFound(StoreError, NotFound):
    def __init__(self, snapshot_id: str) -> None:
        super().__init__(f"no recovery point {snapshot_id!r} in the store", "list them with 'tapeline points GROUP'")


class ChunkMissing(StoreError):
    def __init__(self, digest: bytes) -> None:
        super().__init__(f"chunk {digest.hex()[:16]} is missing from the store", "run 'tapeline check GROUP --full'")


class ChunkDamaged(StoreError):
    def __init__(self, digest: bytes, where: str) -> None:
        super().__init__(f"chunk {digest.hex()[:16]} in {where} is damaged", "run 'tapeline check GROUP --full'")


class ManifestDamaged(StoreError):
    def __init__(self, snapshot_id: str, why: str) -> None:
        super().__init__(f"recovery point {snapshot_id} has a damaged manifest ({why})",
                         "restore from another recovery point; run 'tapeline check GROUP --full'")
