"""The tape write and read paths over the simulator's drives (the same driver code as on real hardware): a set that
spans cartridges at early warning, a media error that moves the set to another cartridge, one file read back with
one LOCATE and at most two frames, and a damaged block that loses only the files in its frame."""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from drivers.changer import MediaChanger
from drivers.tape import TapeDrive
from appliance.media import archive
from appliance.media import format as fmt
from appliance.media.tape_read import FrameSource, ReadResult, SetLayout, plan, read_run
from appliance.media.tape_write import SWITCH_INTERVAL, Abandon, Target, write_set
from simulators.vtl.cli import main as vtl_main
from tests.drivers.test_tape_driver import CountedWrites

BS = fmt.BLOCK_SIZE
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
FRAME = 1 << 20


class Bench(Target):
    """A library's drive 0, each part on the next cartridge in slot order, labelled as a media set's tape."""

    def __init__(self, directory: Path):
        self.changer = MediaChanger(f"local://{directory}/changer")
        self.drive = TapeDrive(f"local://{directory}/drive0")
        inv = self.changer.inventory()
        self.queue = [e.barcode for e in inv.slots if e.full and not e.cleaning]
        self.parts, self.suspects = [], []

    def mount(self, barcode: str) -> TapeDrive:
        if self.drive.cartridge != barcode:
            if self.changer.inventory().drive(0).full:
                self.drive.unload()
            self.changer.load_by_barcode(barcode, 0)
            self.drive.cartridge = barcode
            self.drive.wait_ready(30)
            self.drive.set_block_size(BS)
        return self.drive

    def start_part(self, part: int):
        barcode = self.queue.pop(0)
        drive = self.mount(barcode)
        drive.rewind()
        drive.write(fmt.encode_volume_label(fmt.VolumeLabel(barcode, "u-" + barcode, "p", NOW, BS)))
        drive.write_filemarks(1)
        drive.write(fmt.encode_media_set_label(fmt.MediaSetLabel("p", "ms", part, None, NOW), BS))
        drive.write_filemarks(1)
        return drive, barcode, 2

    def trailer(self, part) -> bytes:
        return fmt.encode_catalog(fmt.MediaSetCatalog(fmt.MediaSetLabel("p", "ms", 0, None, NOW), []), BS)

    def part_done(self, part, full: bool) -> None:
        self.parts.append((part, full))

    def suspect(self, barcode: str, cause: Exception) -> None:
        self.suspects.append(barcode)


def library(tmp_path: Path, *args: str) -> Path:
    directory = tmp_path / "vtl"
    assert vtl_main(["init", str(directory), "--slots", "6", "--drives", "1", *args]) == 0
    return directory


def tree(root: Path, files: int = 12, size: int = 700_000) -> dict[str, bytes]:
    """Files of random bytes (incompressible: each ~0.7 frame), so a set has many frames."""
    root.mkdir()
    out = {}
    for i in range(files):
        data = os.urandom(size)
        (root / f"f{i:02d}.bin").write_bytes(data)
        out[f"f{i:02d}.bin"] = data
    return out


def frames_of(root: Path):
    def make():
        writer = archive.ArchiveWriter(frame_size=FRAME)
        for member in archive.members_from_tree(root):
            yield from writer.add(member)
        yield from writer.close(end=True)
    return make


def header(part: int, tape_file: int) -> fmt.SetHeader:
    return fmt.SetHeader("set-1", "g", 1, "snap", NOW, "full", part, tape_file, "p", "ms", BS)


def write(bench: Bench, root: Path):
    return write_set(bench, frames_of(root), header, BS, threading.Event())


def layout_of(stats) -> SetLayout:
    indexes = [fmt.decode_index(p.index) for p in stats.parts]
    return SetLayout.of(indexes, {p.part: p.barcode for p in stats.parts}), [e for i in indexes for e in i.entries]


def read_back(bench: Bench, layout: SetLayout, entries, wanted=None) -> tuple[dict[str, bytes], ReadResult, int]:
    got: dict[str, bytes] = {}
    result = ReadResult()
    source = FrameSource(layout, bench.mount)
    chosen = [e for e in entries if wanted is None or e.path.endswith(wanted.encode())]
    for run in plan(layout, chosen):
        read_run(run, source, lambda info, f: got.__setitem__(os.path.basename(info.name), f.read()), result)
    return got, result, source.bytes_read


def test_a_set_spans_cartridges_at_early_warning_and_reads_back_whole(tmp_path):
    directory = library(tmp_path)
    bench = Bench(directory)
    data = tree(tmp_path / "src")
    first = bench.queue[0]
    assert vtl_main(["fault", str(directory), "early-eom", first, "--at", str(12 << 20)]) == 0
    stats = write(bench, tmp_path / "src")
    assert [(p.barcode, full) for p, full in bench.parts] == [(first, True), (bench.parts[1][0].barcode, False)]
    assert [p.tape_file for p in stats.parts] == [2, 2] and [p.complete for p in stats.parts] == [False, True]
    layout, entries = layout_of(stats)
    got, result, _ = read_back(bench, layout, entries)
    assert result.lost == [] and {k: got[k] for k in data} == data


def test_the_interpreter_is_set_for_streaming_while_a_set_is_written_and_as_before_after(tmp_path):
    bench = Bench(library(tmp_path))
    tree(tmp_path / "src", files=3)
    before = sys.getswitchinterval()
    seen: list[float] = []
    write_set(bench, frames_of(tmp_path / "src"), header, BS, threading.Event(),
              lambda *_: seen.append(sys.getswitchinterval()))
    assert seen and all(interval == pytest.approx(min(before, SWITCH_INTERVAL)) for interval in seen)
    assert sys.getswitchinterval() == before

    def broken():
        yield from frames_of(tmp_path / "src")()
        raise OSError("the replica went away")
    with pytest.raises(OSError, match="went away"):
        write_set(bench, broken, header, BS, threading.Event())
    assert sys.getswitchinterval() == before


def test_each_parts_index_built_while_written_is_the_index_of_what_it_holds(tmp_path):
    """The member lines are built frame by frame as the drive takes them; the index is the one `encode_index` gives
    for the part's frames and entries, the last part's with the members an earlier set holds (an incremental's)."""
    directory = library(tmp_path)
    bench = Bench(directory)
    tree(tmp_path / "src")
    assert vtl_main(["fault", str(directory), "early-eom", bench.queue[0], "--at", str(6 << 20)]) == 0
    held = fmt.IndexEntry(b"src/kept.txt", "file", 3, 0o100644, 0, 0, 1, b"d" * 32, 0, 0, 1, "older-set")
    stats = write_set(bench, frames_of(tmp_path / "src"), header, BS, threading.Event(), carried=[held])
    assert len(stats.parts) == 2
    for part in stats.parts:
        assert part.index == fmt.encode_index(fmt.SetIndex(part.header, part.frames, part.entries, part.complete))
    assert fmt.decode_index(stats.parts[-1].index).entries[-1] == held
    assert held not in fmt.decode_index(stats.parts[0].index).entries


def test_each_frame_reaches_the_drive_in_one_write_command(tmp_path):
    bench = Bench(library(tmp_path))
    counted = CountedWrites(bench.drive.transport, bench.drive.transport.max_transfer)
    bench.drive = TapeDrive(counted)
    data = tree(tmp_path / "src")
    stats = write(bench, tmp_path / "src")
    [part] = stats.parts
    # labels 2, the set's header block, its frames, the padding, the index, the catalog: not one per block
    assert len(counted.writes) <= len(part.frames) + 6 < part.blocks
    layout, entries = layout_of(stats)
    got, result, _ = read_back(bench, layout, entries)
    assert result.lost == [] and {k: got[k] for k in data} == data


def test_a_media_error_while_writing_moves_the_set_to_another_cartridge(tmp_path):
    directory = library(tmp_path)
    bench = Bench(directory)
    data = tree(tmp_path / "src", files=4)
    first = bench.queue[0]
    assert vtl_main(["fault", str(directory), "media-error", first, "--at", "6"]) == 0
    stats = write(bench, tmp_path / "src")
    assert bench.suspects == [first]
    assert len(stats.parts) == 1 and stats.parts[0].barcode != first
    got, result, _ = read_back(bench, *layout_of(stats))
    assert {k: got[k] for k in data} == data


def test_media_errors_on_every_cartridge_give_up_after_three_attempts(tmp_path):
    directory = library(tmp_path)
    bench = Bench(directory)
    tree(tmp_path / "src", files=4)
    for barcode in bench.queue:
        assert vtl_main(["fault", str(directory), "media-error", barcode, "--at", "6", "--persistent"]) == 0
    with pytest.raises(Abandon):
        write(bench, tmp_path / "src")
    assert len(bench.suspects) == 3


def test_one_file_is_read_with_at_most_two_frames(tmp_path):
    bench = Bench(library(tmp_path))
    data = tree(tmp_path / "src", files=30)
    stats = write(bench, tmp_path / "src")
    layout, entries = layout_of(stats)
    assert len(layout.frames) > 15
    got, result, read = read_back(bench, layout, entries, wanted="f17.bin")
    assert got == {"f17.bin": data["f17.bin"]}
    # two frames, plus what one READ of READ_BLOCKS blocks brings past the second one's end
    assert read <= 2 * FRAME + 5 * BS


def test_a_damaged_block_loses_only_the_files_of_its_frame(tmp_path):
    directory = library(tmp_path)
    bench = Bench(directory)
    data = tree(tmp_path / "src", files=10)
    stats = write(bench, tmp_path / "src")
    layout, entries = layout_of(stats)
    victim = next(e for e in entries if e.path.endswith(b"f04.bin"))
    bad_block = layout.frames[victim.frame][1].block + 1
    assert vtl_main(["fault", str(directory), "media-error", stats.parts[0].barcode, "--at", str(bad_block),
                     "--persistent"]) == 0
    got, result, _ = read_back(bench, layout, entries)
    lost = {os.path.basename(p.decode()) for p in result.lost}
    assert "f04.bin" in lost and len(lost) <= 3
    assert all(got[name] == data[name] for name in data if name not in lost)
    assert set(got) | lost >= set(data)
