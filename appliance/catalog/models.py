"""The catalog's tables (SQLModel). An index of what the store holds plus the appliance's own state (jobs, alerts).

Invariants:
- Every timestamp is UTC and tz-aware in Python, whatever the database keeps (`UTCDateTime`; SQLite drops tzinfo).
- `RecoveryPoint.id` grows with time within a group (points are recorded in the order the group's one writer job
  made them, and a rebuild re-records them oldest first), so a file version's life is the id range
  `[first_point, until_point)`; `until_point` NULL means "still the current version".
- `FileVersion` rows are written in bulk with SQLAlchemy Core (catalog/versions.py), never one ORM object per row.
- `SchemaVersion` holds one row; engine.open_catalog refuses a catalog written by a newer schema.
- `StoreIdentity` holds one row: the id of the replica store this catalog indexes (the store's config names it). A
  daemon whose store has another id is refused at start (a catalog shared by two daemons would otherwise lose every
  point of the one to the other's reconciliation).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, LargeBinary, TypeDecorator, text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 2  # 2: offsite rotation (vaults, cases, moves; columns on cartridge, pool, media set)

CLOSED_INDEX = "ix_file_version_closed"
OLD_UNTIL_INDEX = "ix_file_version_until_point"  # every row's until_point, NULLs too (catalogs made before)

JOB_FINISHED = ("completed", "completed with warnings", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always returns tz-aware UTC datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the catalog; pass a tz-aware UTC time")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def _time(nullable: bool = False):
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    id: int = Field(default=1, primary_key=True)
    version: int


class StoreIdentity(SQLModel, table=True):
    __tablename__ = "store_identity"
    id: int = Field(default=1, primary_key=True)
    store_id: str
    store_path: str  # where the store was when it was recorded, for the message that refuses another one
    recorded: datetime = _time()


class ProtectionGroup(SQLModel, table=True):
    __tablename__ = "protection_group"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    sync_seconds: int
    point_times: str  # "08:00,11:00,..." (sorted, unique)
    keep_seconds: int
    paused: bool = False
    created: datetime = _time()


class Source(SQLModel, table=True):
    __tablename__ = "source"
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="protection_group.id", index=True, ondelete="CASCADE")
    path: str
    include: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exclude: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class RecoveryPoint(SQLModel, table=True):
    __tablename__ = "recovery_point"
    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(unique=True, index=True)
    group_id: int = Field(foreign_key="protection_group.id", index=True, ondelete="CASCADE")
    kind: str  # "sync" | "point"
    time: datetime = _time()
    state: str = "ok"  # "ok" | "damaged"
    files: int = 0
    bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class FileVersion(SQLModel, table=True):
    """One version of one path of one source: valid in the group's points with id in [first_point, until_point)."""

    __tablename__ = "file_version"
    # Only closed versions are looked up by until_point (a prune's range): current ones (NULL, nearly every row a
    # first sync writes) stay out of that index, which spares a tenth of a big first sync's catalog write.
    __table_args__ = (Index("ix_file_version_lookup", "group_id", "source_id", "path"),
                      Index(CLOSED_INDEX, "until_point", sqlite_where=text("until_point IS NOT NULL"),
                            postgresql_where=text("until_point IS NOT NULL")))
    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="protection_group.id", ondelete="CASCADE")
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    path: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # relative to the source, as the store has it
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    mtime_ns: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    first_point: int
    until_point: int | None = None


class Job(SQLModel, table=True):
    __tablename__ = "job"
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "sync" | "point" | "check" | "restore" | "prune" | "purge"
    group_id: int | None = Field(default=None, index=True)
    group_name: str | None = None
    state: str = Field(default="queued", index=True)  # queued, running, then one of JOB_FINISHED
    params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress_done: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    progress_total: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    progress_message: str = ""
    created: datetime = _time()
    started: datetime | None = _time(nullable=True)
    finished: datetime | None = _time(nullable=True)
    reason: str | None = None
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    result: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    requested_by: str = "operator"  # "operator" | "schedule"


class JobEvent(SQLModel, table=True):
    """One step of a job's life (queued, started, waited, retried, and its end), kept as long as the job
    (`jobs.keep_history`)."""
    __tablename__ = "job_event"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(index=True)
    time: datetime = _time()
    event: str  # "queued" | "started" | "waited" | "retried" | one of JOB_FINISHED
    message: str = ""


class Alert(SQLModel, table=True):
    """Open while neither resolved (its condition cleared: `resolved` says when) nor acknowledged (an operator's
    word). `object_kind`/`object_name`: what it concerns ("group" "docs", "drive" "vtl drive 0", "mail server"
    "smtp.example.com:587", ...), none for the appliance as a whole."""
    __tablename__ = "alert"
    id: int | None = Field(default=None, primary_key=True)
    severity: str  # "error" | "warning" | "info"
    group_name: str | None = None
    job_id: int | None = None
    message: str
    fix: str = ""
    time: datetime = _time()
    acknowledged: bool = Field(default=False, index=True)
    resolved: datetime | None = _time(nullable=True)
    object_kind: str | None = None
    object_name: str | None = None


# --- tape media (appliance/media; queries in catalog/media.py) --------------------------------------------------
# A cartridge holds at most one media set (the tapes a pool wrote one after another); a media set's data expires
# `retention` after the set is closed (no more appends), the retention its pool had when the set was last written
# (stamped on the set: shortening a pool's retention frees nothing already written without an operator's word).

CARTRIDGE_STATES = ("blank", "scratch", "allocated", "full", "expired", "retired", "damaged", "cleaning", "foreign")

# Where a cartridge is: in the library (slot, drive, mail slot), on site out of the library ("outside": the shelf),
# on its way between sites ("transit"), or in a vault (`Cartridge.vault_id` names which).
LOCATIONS = ("slot", "drive", "mailslot", "outside", "transit", "vault")
IN_LIBRARY_LOCATIONS = ("slot", "drive", "mailslot")

# Offsite rotation states as IBM Spectrum Protect's DRM has them (appliance/vault/moves.py: the allowed moves).
ROTATION_STATES = ("mountable", "notmountable", "courier", "vault", "vaultretrieve", "courierretrieve",
                   "onsiteretrieve")


class Library(SQLModel, table=True):
    __tablename__ = "library"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    changer_url: str
    drive_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created: datetime = _time()
    last_inventory: datetime | None = _time(nullable=True)


class Drive(SQLModel, table=True):
    __tablename__ = "drive"
    id: int | None = Field(default=None, primary_key=True)
    library_id: int = Field(foreign_key="library.id", index=True, ondelete="CASCADE")
    number: int  # data transfer element order (mtx numbering), 0..
    url: str
    serial: str | None = None
    enabled: bool = True
    failures_in_row: int = 0
    disabled_reason: str | None = None
    cleanings: int = 0
    last_cleaned: datetime | None = _time(nullable=True)


class Pool(SQLModel, table=True):
    __tablename__ = "pool"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    library_id: int = Field(foreign_key="library.id", index=True)
    retention_seconds: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # None: forever
    allocation: str = "continue"  # "continue" | "always" | a calendar event ("weekly", "Sat 18:00", ...)
    encrypt_key: str | None = None  # path of the key file (never the key)
    key_fingerprint: str | None = None
    verify: bool = True
    reuse_delay_seconds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created: datetime = _time()
    # offsite rotation (appliance/vault/policy.py); no vault: the pool's sets stay on site
    vault_id: int | None = Field(default=None, foreign_key="vault.id")
    offsite_copies: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    recall: str = Field(default="expired", sa_column_kwargs={"server_default": "expired"})  # or a calendar event
    gfs: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    # the sampled read-back check of vaulted cartridges: `check_sample` of them recalled every `check_every`
    check_sample: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    check_every_seconds: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class MediaSet(SQLModel, table=True):
    __tablename__ = "media_set"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(unique=True, index=True)
    pool_id: int = Field(foreign_key="pool.id", index=True)
    created: datetime = _time()
    closed: datetime | None = _time(nullable=True)  # no more appends from then on; retention counts from here
    retention_seconds: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # None: forever
    expires: datetime | None = _time(nullable=True)  # closed + retention; None: open, or kept forever
    key_fingerprint: str | None = None
    last_written: datetime | None = _time(nullable=True)
    tier: str | None = None  # its GFS tier ("daily", "weekly", "monthly", "yearly") when its pool has tiers


class Cartridge(SQLModel, table=True):
    __tablename__ = "cartridge"
    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(unique=True, index=True)
    label_uuid: str | None = None  # the volume label on tape (file 0), once Tapeline wrote or read it
    library_id: int | None = Field(default=None, foreign_key="library.id", index=True)
    pool_id: int | None = Field(default=None, foreign_key="pool.id", index=True)
    media_set_id: int | None = Field(default=None, foreign_key="media_set.id", index=True)
    sequence: int | None = None  # this tape's number in its media set, 0..
    state: str = "blank"  # CARTRIDGE_STATES
    note: str | None = None  # why a cartridge is foreign, damaged or skipped, for the operator
    write_protected: bool = False
    bytes_written: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    mounts: int = 0
    read_errors: int = 0
    write_errors: int = 0
    last_used: datetime | None = _time(nullable=True)
    location_kind: str = "outside"  # LOCATIONS
    location_number: int | None = None  # slot (mtx number), drive (0..) or mail slot (1..)
    vault_id: int | None = Field(default=None, foreign_key="vault.id", index=True)  # location "vault"
    rotation: str = Field(default="mountable", sa_column_kwargs={"server_default": "mountable"})  # ROTATION_STATES
    case_id: int | None = Field(default=None, foreign_key="media_case.id", index=True)
    # the sampled read-back check (vault/checks.py): recalled for it at `check_requested`; the last verify's outcome
    check_requested: datetime | None = _time(nullable=True)
    last_check: datetime | None = _time(nullable=True)
    last_check_result: str | None = None  # "ok" or the first problem the verify found
    cleaning_uses: int = 0
    next_file: int = 0  # the tape file a new set is appended at (after the last good set's index file)
    expires: datetime | None = _time(nullable=True)  # when its data may be overwritten (its media set's expiry)
    first_seen: datetime = _time()


class Vault(SQLModel, table=True):
    """An offsite site that keeps cartridges (a vault company, another office)."""

    __tablename__ = "vault"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    contact: str = ""
    created: datetime = _time()


class MediaCase(SQLModel, table=True):
    """A numbered case cartridges travel in: sent and received as one."""

    __tablename__ = "media_case"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True)
    vault_id: int | None = Field(default=None, foreign_key="vault.id")
    created: datetime = _time()


class CartridgeMove(SQLModel, table=True):
    """One change of a cartridge's place or rotation state. Shuffles inside the library (slot to drive and back)
    are not moves: they are counted as mounts."""

    __tablename__ = "cartridge_move"
    id: int | None = Field(default=None, primary_key=True)
    cartridge_id: int = Field(foreign_key="cartridge.id", index=True, ondelete="CASCADE")
    time: datetime = _time()
    operator: str  # a person's name, or "tapeline" for the appliance's own moves
    from_location: str
    to_location: str
    from_rotation: str
    to_rotation: str
    reason: str = ""
    job_id: int | None = None


class TapeSet(SQLModel, table=True):
    """One recovery point (D2D2T) or one read of a group's sources (D2T) written to tape."""

    __tablename__ = "tape_set"
    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(unique=True, index=True)
    media_set_id: int = Field(foreign_key="media_set.id", index=True)
    group_id: int | None = Field(default=None, index=True)  # no foreign key: a deleted group's sets stay on tape
    group_name: str
    point_id: int | None = None
    snapshot_id: str | None = None
    kind: str  # "full" | "incremental" | "direct"
    base_set_id: int | None = None  # an incremental's previous set of the group in the pool
    created: datetime = _time()
    state: str = "writing"  # "writing" | "ok" | "failed"
    verified: datetime | None = _time(nullable=True)
    files: int = 0
    bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    expires: datetime | None = _time(nullable=True)


class TapeSetPart(SQLModel, table=True):
    """Where one set's part lies: a set that spans cartridges has one part per cartridge, in order."""

    __tablename__ = "tape_set_part"
    __table_args__ = (Index("ix_tape_set_part_set", "set_id", "part", unique=True),)
    id: int | None = Field(default=None, primary_key=True)
    set_id: int = Field(foreign_key="tape_set.id", ondelete="CASCADE")
    part: int
    cartridge_id: int = Field(foreign_key="cartridge.id", index=True)
    tape_file: int  # the data file's number on the cartridge
    index_file: int | None = None  # the index file written after it
    first_block: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    blocks: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TapePolicy(SQLModel, table=True):
    """A group's tape schedule (`tapeline group set NAME --tape-pool P --tape-full CALENDAR ...`): full sets on one
    calendar event, incremental ones on another, into one pool."""

    __tablename__ = "tape_policy"
    group_id: int = Field(primary_key=True, foreign_key="protection_group.id", ondelete="CASCADE")
    pool_id: int = Field(foreign_key="pool.id")
    full: str  # a calendar event (media/pools.py calendar_trigger)
    incremental: str | None = None
