"""Data-in replies of the simulated devices, built with the `drivers.scsi` data codecs.

Invariants: every reply is the complete data the device has (the target cuts it to the allocation length and
reports the residue), built only through the codecs; an unsupported page or field is 05/24/00 pointing at the CDB
field, a bad parameter list 05/26/00 or 05/1A/00 pointing into the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from drivers.scsi import smc, spc, ssc, tapelog
from drivers.scsi.sense import PARAMETER_LIST_LENGTH_ERROR
from simulators.vtl.library import DATA_TRANSFER, IMPORT_EXPORT, STORAGE, TRANSPORT
from simulators.vtl.target import GOOD_ANSWER, Answer, LogicalUnit, check, invalid_field, invalid_parameter

if TYPE_CHECKING:
    from simulators.vtl.cartridge import Cartridge
    from simulators.vtl.personality import Drive, Media


class TapeUnit(Protocol):
    """What the drive pages read and set on a drive (`drive_lu.DriveUnit`, which builds on this module)."""

    library: Any
    drive: Drive
    media: Media | None
    cartridge: Cartridge | None
    position: int
    block_length: int
    compression: bool
    tapealerts: set[int]

    def needs_cleaning(self) -> bool: ...

MEDIUM_CODES = {"data": smc.MEDIUM_DATA, "cleaning": smc.MEDIUM_CLEANING, "worm": smc.MEDIUM_WORM}
SMC_TYPE = {TRANSPORT: smc.ELEMENT_TRANSPORT, STORAGE: smc.ELEMENT_STORAGE, IMPORT_EXPORT: smc.ELEMENT_IMPORT_EXPORT,
            DATA_TRANSFER: smc.ELEMENT_DATA_TRANSFER}
ALL_PAGES = 0x3F
# TapeAlert flags this drive raises (reference/scsi.md §4 table).
TA_WRITE_PROTECT = 0x09
TA_READ_ONLY_FORMAT = 0x11
TA_CLEAN_NOW = 0x14
TA_EXPIRED_CLEANING = 0x16
TA_WORM_OVERWRITE = 0x3C
TA_READ_FAILURE = 0x05
TA_WRITE_FAILURE = 0x06
TA_NO_REMOVAL = 0x0A


# ---- SPC, both device types ---------------------------------------------------------------------------------------
def inquiry(unit: LogicalUnit, layout, fields: dict[str, int], vendor: str, product: str, revision: str) -> Answer:
    pdt = unit.device_type
    serial = unit_serial(unit)
    if not fields["evpd"]:
        if fields["page_code"]:
            raise invalid_field(layout, "page_code")
        data = spc.InquiryData(
            pdt=pdt, vendor=vendor, product=product, revision=revision, rmb=pdt == spc.PDT_TAPE,
            vendor_specific=serial.encode() if pdt == spc.PDT_TAPE else b"",
        )
        return Answer(data.encode())
    page = fields["page_code"]
    if page == spc.VPD_SUPPORTED_PAGES:
        return Answer(spc.encode_vpd_supported_pages(
            pdt, (spc.VPD_SUPPORTED_PAGES, spc.VPD_UNIT_SERIAL_NUMBER, spc.VPD_DEVICE_IDENTIFICATION)))
    if page == spc.VPD_UNIT_SERIAL_NUMBER:
        return Answer(spc.encode_vpd_serial(pdt, serial))
    if page == spc.VPD_DEVICE_IDENTIFICATION:
        return Answer(spc.encode_vpd_device_identification(pdt, (spc.Designator.t10_vendor(vendor, product, serial),)))
    raise invalid_field(layout, "page_code")


def unit_serial(unit: LogicalUnit) -> str:
    base = unit.library.state.serial
    return base if unit.name == "changer" else f"{base}{unit.name[len('drive'):]}"


def _mode_answer(fields: dict[str, int], data: spc.ModeData) -> Answer:
    return Answer(data.encode(ten="llbaa" in fields))


def _mode_layout(fields: dict[str, int]):
    return spc.MODE_SENSE_10 if "llbaa" in fields else spc.MODE_SENSE_6


# ---- changer ------------------------------------------------------------------------------------------------------
def changer_mode_sense(unit: LogicalUnit, fields: dict[str, int]) -> Answer:
    lib = unit.library
    p, s = lib.personality, lib.state
    pages = {
        smc.PAGE_ELEMENT_ADDRESS_ASSIGNMENT: smc.ElementAddressAssignment(
            p.transport_base, 1, p.storage_base, len(s.slots), p.ie_base, len(s.mailslots), p.drive_base,
            len(s.drives),
        ).encode(),
        smc.PAGE_TRANSPORT_GEOMETRY: smc.TransportGeometry().encode(),
        smc.PAGE_DEVICE_CAPABILITIES: smc.DeviceCapabilities().encode(),
    }
    code = fields["page_code"]
    if code == ALL_PAGES:
        chosen = tuple(pages[c] for c in sorted(pages))
    elif code in pages:
        chosen = (pages[code],)
    else:
        raise invalid_field(_mode_layout(fields), "page_code")
    if fields["pc"] == spc.PAGE_CONTROL_CHANGEABLE:  # nothing is changeable: all-zero masks of the same length
        chosen = tuple(page[:2] + bytes(len(page) - 2) for page in chosen)
    return _mode_answer(fields, spc.ModeData(pages=chosen))  # mtx skips 4 + bdlen: no block descriptor


def element_status(views: list[tuple[int, int, dict]], fields: dict[str, int]) -> Answer:
    """READ ELEMENT STATUS data for (element type, address, view) in order; views as `ChangerUnit.element_view`."""
    statuses = []
    for etype, address, view in views:
        drive = view.get("drive")
        statuses.append(smc.ElementStatus(
            element_type=SMC_TYPE[etype],
            address=address,
            full=view["barcode"] is not None,
            impexp=view["impexp"],
            access=view["access"],
            exenab=etype == IMPORT_EXPORT,
            inenab=etype == IMPORT_EXPORT,
            svalid=view["source"] is not None and view["barcode"] is not None,
            medium_type=MEDIUM_CODES.get(view["medium"], smc.MEDIUM_UNSPECIFIED),
            source=view["source"] or 0,
            primary_tag=view["barcode"],
            device_id=f"{drive.drive.vendor:<8}{drive.drive.product:<16}{unit_serial(drive):<10}" if drive else None,
        ))
    return Answer(smc.encode_element_status(
        statuses, voltag=bool(fields["voltag"]), alloc=fields["alloc"], dvcid=bool(fields["dvcid"])))


# ---- drive --------------------------------------------------------------------------------------------------------
def drive_mode_sense(unit: TapeUnit, fields: dict[str, int]) -> Answer:
    media, c = unit.media, unit.cartridge
    code = fields["page_code"]
    pages = {
        ssc.PAGE_COMPRESSION: ssc.CompressionPage(dce=unit.compression).encode(),
        ssc.PAGE_DEVICE_CONFIGURATION: ssc.DeviceConfigurationPage(select_compression=int(unit.compression)).encode(),
    }
    if code == ALL_PAGES:
        chosen = tuple(pages.values())
    elif code == 0:
        chosen = ()
    elif code in pages:
        chosen = (pages[code],)
    else:
        raise invalid_field(_mode_layout(fields), "page_code")
    descriptor = None if fields["dbd"] else spc.BlockDescriptor(
        density=media.density_code if media else 0, block_length=unit.block_length)
    data = spc.ModeData(
        medium_type=media.medium_type if media else 0,
        wp=bool(c is not None and (c.protected or (media is not None and not unit.drive.can_write(media)))),
        buffered_mode=1,
        block_descriptor=descriptor,
        pages=chosen,
    )
    return _mode_answer(fields, data)


def drive_mode_select(unit: TapeUnit, fields: dict[str, int], data_out: memoryview, ten: bool) -> Answer:
    if len(data_out) != fields["param_len"]:
        raise check(PARAMETER_LIST_LENGTH_ERROR)
    if not data_out:
        return GOOD_ANSWER
    try:
        data = spc.ModeData.decode(data_out, ten=ten)
    except ValueError:
        raise check(PARAMETER_LIST_LENGTH_ERROR) from None
    if data.block_descriptor is not None:
        bd = data.block_descriptor
        if bd.block_length > unit.drive.max_block:
            raise invalid_parameter(spc.ModeData.block_descriptor_pointer("block_length", ten))
        allowed = {0, unit.media.density_code} if unit.media else {0}
        if bd.density not in allowed and bd.density != 0x7F:  # 0x7F: "no change"
            raise invalid_parameter(spc.ModeData.block_descriptor_pointer("density", ten))
    compression = data.page(ssc.PAGE_COMPRESSION)
    if any(page is not compression for page in data.pages):  # only the compression page is changeable
        raise invalid_parameter(data.pages_pointer(ten))
    if data.block_descriptor is not None:  # applied only once the whole list is valid
        unit.block_length = data.block_descriptor.block_length
    if compression is not None:
        unit.compression = ssc.CompressionPage.decode(compression).dce
    # No unit attention elsewhere: each drive is a target of its own (reached by its own URL), and a drive's mode
    # parameters are its own; another drive's MODE SELECT changes nothing for it (a UA there would fail a writer).
    return GOOD_ANSWER


DRIVE_LOG_PAGES = (spc.LOG_PAGE_SUPPORTED, tapelog.PAGE_TAPE_ALERT, tapelog.PAGE_TAPE_CAPACITY)


def drive_log_sense(unit: TapeUnit, fields: dict[str, int]) -> Answer:
    code = fields["page_code"]
    if fields["subpage"]:  # no subpages (0xFF, "all subpages", included): tapeinfo and sg_logs ask for subpage 0
        raise invalid_field(spc.LOG_SENSE, "subpage")
    if code == spc.LOG_PAGE_SUPPORTED:
        return Answer(spc.encode_supported_log_pages(DRIVE_LOG_PAGES))
    if code == tapelog.PAGE_TAPE_ALERT:
        flags = set(unit.tapealerts)
        if unit.needs_cleaning():
            flags.add(TA_CLEAN_NOW)
        unit.tapealerts.clear()  # reading the page clears the flags
        return Answer(tapelog.encode_tape_alert(flags))
    if code == tapelog.PAGE_TAPE_CAPACITY:
        c: Cartridge | None = unit.cartridge
        if c is None:
            return Answer(tapelog.TapeCapacity(remaining=(0,), maximum=(0,)).encode())
        mib = 1024 * 1024
        remaining = max(0, c.capacity - c.used) // mib
        return Answer(tapelog.TapeCapacity(remaining=(remaining,), maximum=(c.capacity // mib,)).encode())
    raise invalid_field(spc.LOG_SENSE, "page_code")


def read_position(unit: TapeUnit, c: Cartridge, fields: dict[str, int]) -> Answer:
    bop, eop = unit.position == 0, c.in_early_warning(unit.position)
    position = ssc.Position(block=unit.position, bop=bop, eop=eop, file=c.file_number(unit.position), set_number=0)
    return Answer(position.encode(fields["service_action"]))


def read_block_limits(max_block: int) -> Answer:
    return Answer(ssc.BlockLimits(max_block=max_block, min_block=1, granularity=0).encode())
