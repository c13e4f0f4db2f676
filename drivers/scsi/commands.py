"""Opcode lookup per device type, for a SCSI target to dispatch on.

Public API:

    by_opcode(device_type, opcode) -> Cdb | None    device_type is the PDT (PDT_TAPE, PDT_CHANGER); None = unknown,
                                                    which a target answers with 05/20/00 (INVALID_OPCODE)
    commands_for(device_type) -> Mapping[int, Cdb]  the whole table

Opcodes are only unique within a device type: 0x2B is LOCATE(10) on a tape and POSITION TO ELEMENT on a changer.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from drivers.scsi import smc, spc, ssc
from drivers.scsi.cdb import Cdb


def _table(*families: tuple[Cdb, ...]) -> Mapping[int, Cdb]:
    table: dict[int, Cdb] = {}
    for family in families:
        for cdb in family:
            if cdb.opcode in table:
                raise ValueError(f"opcode {cdb.opcode:#04x} is both {table[cdb.opcode].name} and {cdb.name}")
            table[cdb.opcode] = cdb
    return MappingProxyType(table)


_TABLES: Mapping[int, Mapping[int, Cdb]] = {
    spc.PDT_TAPE: _table(spc.COMMANDS, ssc.COMMANDS),
    spc.PDT_CHANGER: _table(spc.COMMANDS, smc.COMMANDS),
}


def commands_for(device_type: int) -> Mapping[int, Cdb]:
    try:
        return _TABLES[device_type]
    except KeyError:
        raise ValueError(f"no command table for peripheral device type {device_type:#04x}") from None


def by_opcode(device_type: int, opcode: int) -> Cdb | None:
    return commands_for(device_type).get(opcode)
