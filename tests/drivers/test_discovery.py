"""Device discovery against a fake sysfs laid out as real Linux lays it out (this machine has no SCSI devices)."""

from pathlib import Path

from drivers.discovery import discover, tapes_and_changers

PCI = "devices/pci0000:00/0000:00:1f.2"


def add_device(sysfs: Path, hctl: str, type_code: int, vendor: str, model: str, rev: str, sg: str, uppers=()):
    """A SCSI device directory H:C:T:L with its sg node, as the kernel creates it, and the class link to it."""
    host, _, target, _ = hctl.split(":")
    device = sysfs / PCI / f"host{host}" / f"target{host}:0:{target}" / hctl
    device.mkdir(parents=True)
    # sysfs pads vendor (8) and model (16) with spaces and ends each file with a newline
    (device / "type").write_text(f"{type_code}\n")
    (device / "vendor").write_text(f"{vendor:<8}\n")
    (device / "model").write_text(f"{model:<16}\n")
    (device / "rev").write_text(f"{rev}\n")
    sg_dir = device / "scsi_generic" / sg
    sg_dir.mkdir(parents=True)
    (sg_dir / "device").symlink_to("../..")
    for sub, name in uppers:
        (device / sub / name).mkdir(parents=True)
    link_dir = sysfs / "class" / "scsi_generic"
    link_dir.mkdir(parents=True, exist_ok=True)
    (link_dir / sg).symlink_to(Path("../..") / sg_dir.relative_to(sysfs))


def test_drive_and_changer_on_one_target_like_lsscsi_04(tmp_path):
    # as lsscsi shows a real loader: HP Ultrium 5 tape at 0:0:0:0 and a TANDBERG changer as LUN 1 of the same target
    tape_nodes = [("scsi_tape", n) for n in ("st0", "st0a", "st0l", "st0m", "nst0", "nst0a", "nst0l", "nst0m")]
    add_device(tmp_path, "0:0:0:0", 1, "HP", "Ultrium 5-SCSI", "Z51U", "sg4", tape_nodes)
    add_device(tmp_path, "0:0:0:1", 8, "TANDBERG", "StorageLoader", "0495", "sg5", [("scsi_changer", "sch0")])
    add_device(tmp_path, "1:0:0:0", 0, "ATA", "WDC WD100EFAX-68", "0A83", "sg0", [("block", "sda")])
    add_device(tmp_path, "5:0:0:0", 0, "ATA", "Samsung SSD 840", "DB6Q", "sg3", [("block", "sdd")])
    found = discover(tmp_path)
    assert [str(d) for d in found] == [
        "[0:0:0:0]    tape    HP       Ultrium 5-SCSI   Z51U  /dev/nst0  /dev/sg4",
        "[0:0:0:1]    mediumx TANDBERG StorageLoader    0495  /dev/sch0  /dev/sg5",
        "[1:0:0:0]    disk    ATA      WDC WD100EFAX-68 0A83  /dev/sda   /dev/sg0",
        "[5:0:0:0]    disk    ATA      Samsung SSD 840  DB6Q  /dev/sdd   /dev/sg3",
    ]
    tape, changer = tapes_and_changers(tmp_path)
    assert tape.url == "sg:///dev/sg4" and tape.is_tape and tape.node == "/dev/nst0"
    assert changer.url == "sg:///dev/sg5" and changer.is_changer and changer.hctl == (0, 0, 0, 1)


def test_mhvtl_library_sorted_by_numeric_hctl(tmp_path):
    # an emulated L700 and eight drives on LUNs 0..7, as lsscsi lists them; sg10 must sort after sg9
    add_device(tmp_path, "3:0:0:0", 8, "STK", "L700", "vx_0", "sg8")  # old kernels: no scsi_changer node
    for lun in range(8):
        model = "ULT3580-TD3" if lun < 4 else "SDLT600"
        vendor = "IBM" if lun < 4 else "QUANTUM"
        add_device(tmp_path, f"4:0:0:{lun}", 1, vendor, model, "5400", f"sg{9 + lun}", [("scsi_tape", f"nst{2 + lun}")])
    found = discover(tmp_path)
    assert [d.sg for d in found] == [f"/dev/sg{n}" for n in range(8, 17)]
    assert found[0].node is None and str(found[0]).startswith("[3:0:0:0]    mediumx STK      L700             vx_0  -")
    assert found[-1].model == "SDLT600" and found[-1].node == "/dev/nst9"


def test_no_scsi_generic_class_means_no_devices(tmp_path):
    assert discover(tmp_path) == []


def test_unreadable_attributes_still_list_the_device(tmp_path):
    add_device(tmp_path, "2:0:1:0", 1, "IBM", "ULT3580-TD8", "2160", "sg2", [("scsi_tape", "nst1")])
    device = next((tmp_path / PCI).rglob("2:0:1:0"))
    (device / "vendor").unlink()
    (only,) = discover(tmp_path)
    assert only.vendor == "" and only.model == "ULT3580-TD8" and only.url == "sg:///dev/sg2"
