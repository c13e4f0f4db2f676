"""Errors of the hardware boundary that are not SCSI sense (those live in `drivers.scsi.sense`).

Every message names the device and says what to do; callers above (`appliance`, the tools) show it as one line.
"""


class DeviceError(Exception):
    """Base of every error raised below the appliance: transport, SCSI, tool output."""


class TransportError(DeviceError):
    """The command did not reach the device or no answer came back (I/O error, closed socket, timeout)."""


class DeviceNotFound(DeviceError, LookupError):
    """The device URL names nothing that exists, or no transport knows its scheme."""


class DeviceBusy(DeviceError):
    """Another process holds the device (for the simulator: its library directory)."""
