"""SAM status codes and the outcome of one SCSI command, whatever transport carried it.

Public API:

    GOOD, CHECK_CONDITION, CONDITION_MET, BUSY, RESERVATION_CONFLICT, TASK_SET_FULL   SAM-5 status bytes
    ScsiResult(status, data=b"", sense=b"", resid=0)                                    what a transport returns

They live with the codecs, not with the transports, so `drivers.scsi` (which `sense.raise_for_result` needs them in)
depends on nothing in `drivers.transport`; transports import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

GOOD = 0x00
CHECK_CONDITION = 0x02
CONDITION_MET = 0x04
BUSY = 0x08
RESERVATION_CONFLICT = 0x18
TASK_SET_FULL = 0x28


@dataclass(frozen=True, slots=True)
class ScsiResult:
    status: int  # SAM status byte
    data: bytes | memoryview = b""  # data-in; never longer than data_in_len
    sense: bytes = b""  # sense bytes as the device wrote them, when status is CHECK CONDITION
    resid: int = 0  # data_in_len minus the bytes actually transferred
