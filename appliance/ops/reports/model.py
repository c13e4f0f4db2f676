"""What a report is, before it is rendered: titled tables of raw values, each column with the kind of its values.

Kinds: "text", "int", "bytes", "time" (a tz-aware datetime), "duration" (seconds), "ratio". Text and HTML show
them for a person (sizes in KiB..TiB, times in the appliance's zone); CSV keeps them raw (bytes, seconds, ISO 8601)
so a spreadsheet can add them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple, ...]
    empty: str = "none"  # what the text says when there is no row


@dataclass(frozen=True)
class Chart:
    """Lines over days: `table`'s first column is the day, each other column one line."""

    title: str
    table: Table


@dataclass(frozen=True)
class VaultList:
    """The cartridges one vault receives or holds from one library, with their return dates (the `.IM` format)."""

    vault: str
    library: str
    rows: tuple[tuple[str, datetime | None], ...]  # (barcode, return date)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    generated: datetime
    days: int
    summary: tuple[str, ...]  # a few sentences: what a person reads first
    tables: tuple[Table, ...]  # the first is the main one (CSV holds it alone)
    chart: Chart | None = None
    needs_attention: bool = False  # a group late or failing, a job failed, ...
    notes: tuple[str, ...] = field(default=())
    vault_lists: tuple[VaultList, ...] | None = None  # a list a vault company takes (`--format im`); None: not one
