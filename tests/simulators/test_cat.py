"""`tapeline-vtl cat`: a tape file's bytes as `dd` reads them from a drive, also while the library is served; and the
tape format's promise proved with it: `tapeline-vtl cat DIR BARCODE N | zstd -dc | tar -x` restores a set."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from vtl_harness import BIN, init_library, served_library

from appliance.media.archive import ArchiveWriter, members_from_tree, read_frames, read_members
from appliance.media.format import (BLOCK_SIZE, MediaSetLabel, SetHeader, SetIndex, SetStream, VolumeLabel,
                                    decode_index, decode_volume_label, encode_index, encode_media_set_label,
                                    encode_volume_label)
from drivers.changer import MediaChanger
from drivers.tape import TapeDrive
from tests.protect.conftest import assert_same_tree, restored_root, tree_state
from tests.protect.test_fidelity import build_rich_tree

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
GNU_TAR_X = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", "-"]


def cat(directory: Path, barcode: str, number: int) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "tapeline-vtl", "cat", directory, barcode, str(number)], capture_output=True)


def set_header(tape_file: int, part: int = 1) -> SetHeader:
    return SetHeader(set_uuid="set-1", group="docs", point=1, snapshot_id="snap-1", created=NOW, kind="direct",
                     part=part, tape_file=tape_file, pool="weekly", media_set="ms-1")


class Cartridge:
    """A cartridge loaded in drive 0 of a served library, written the way the tape jobs write one."""

    def __init__(self, base: str, slot: int, barcode: str) -> None:
        self.changer = MediaChanger(f"{base}/changer")
        self.changer.load(slot, 0)
        self.drive = TapeDrive(f"{base}/drive0")
        self.drive.clear_unit_attention()
        self.drive.wait_ready(60)
        self.drive.set_block_size(BLOCK_SIZE)
        self.barcode = barcode

    def write_labels(self) -> None:
        self.drive.write(encode_volume_label(VolumeLabel(self.barcode, str(uuid.uuid4()), "weekly", NOW,
                                                         BLOCK_SIZE)))
        self.drive.write_filemarks(1)
        self.drive.write(encode_media_set_label(MediaSetLabel("weekly", "ms-1", 1, None, NOW)))
        self.drive.write_filemarks(1)

    def block(self) -> int:
        return self.drive.read_position().block

    def close(self) -> None:
        self.drive.close()
        self.changer.close()


def write_part(cart: Cartridge, stream: SetStream, frames) -> bytes:
    """The part's tape file, written as the tape writer does: each frame's whole blocks in one WRITE."""
    pieces = [stream.header_block()] + [stream.add(frame) for frame in frames] + [stream.finish()]
    for piece in pieces:
        if piece:
            cart.drive.write(piece)
    cart.drive.write_filemarks(1)
    return b"".join(pieces)


@pytest.fixture
def served(tmp_path):
    directory = tmp_path / "lib"
    layout = init_library(directory)
    barcode = sorted(layout)[0]
    with served_library(directory) as base:
        cart = Cartridge(base, layout[barcode], barcode)
        try:
            yield directory, cart
        finally:
            cart.close()


def test_a_set_restores_with_cat_zstd_and_gnu_tar_and_one_member_from_its_index(served, tmp_path):
    directory, cart = served
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    expected = tree_state(src)
    cart.write_labels()
    writer = ArchiveWriter()
    frames = [f for m in members_from_tree(src) for f in writer.add(m)] + list(writer.close(end=True))
    stream = SetStream(set_header(2), first_block=cart.block(), block_size=BLOCK_SIZE)
    written = write_part(cart, stream, frames)
    entries = [e for f in frames for e in f.entries]
    index = SetIndex(set_header(2), stream.frames, entries, complete=True)
    data = encode_index(index)
    cart.drive.write_blocks([data[i:i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)])
    cart.drive.write_filemarks(1)

    # while the library is served: the bytes dd would read, restored by the standard tools
    raw = cat(directory, cart.barcode, 2)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == written
    assert decode_volume_label(cat(directory, cart.barcode, 0).stdout).barcode == cart.barcode
    assert decode_index(cat(directory, cart.barcode, 3).stdout) == index
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(f"{BIN}/tapeline-vtl cat {directory} {cart.barcode} 2 | zstd -dc | "
                         f"tar --xattrs --xattrs-include='*' --acls -xpf -", shell=True, cwd=out, capture_output=True)
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert_same_tree(expected, restored_root(out, src))
    past = cat(directory, cart.barcode, 4)
    assert past.returncode == 1 and "holds 4 tape files" in past.stderr.decode()

    # one member through the index: one LOCATE, then only the frames it spans (big.bin spans two)
    entry = next(e for e in entries if e.path.endswith(b"/big.bin"))
    positions = stream.frames[entry.frame:entry.frame + 2]
    cart.drive.locate(positions[0].block)
    blocks_read = []

    def blocks():
        while True:
            block = cart.drive.read(BLOCK_SIZE)
            blocks_read.append(len(block))
            yield block

    info, content = next(read_members(read_frames(blocks(), positions[0].offset, frames=positions), entry.offset))
    assert info.name == entry.path.decode() and content.read() == (src / "big.bin").read_bytes()
    span = positions[0].offset + sum(p.length for p in positions)
    assert len(blocks_read) == -(-span // BLOCK_SIZE)


def test_a_set_split_across_two_tape_files_concatenates_into_the_whole_stream(served, tmp_path):
    directory, cart = served
    src = tmp_path / "src"
    src.mkdir()
    build_rich_tree(src)
    expected = tree_state(src)
    cart.write_labels()
    writer = ArchiveWriter(frame_size=1 << 20)
    members = list(members_from_tree(src))
    half = len(members) // 2
    first = SetStream(set_header(2, part=1), first_block=cart.block())
    write_part(cart, first, [f for m in members[:half] for f in writer.add(m)] + list(writer.close()))
    writer.part = 2
    second = SetStream(set_header(3, part=2), first_block=cart.block())
    write_part(cart, second, [f for m in members[half:] for f in writer.add(m)] + list(writer.close(end=True)))
    assert second.frames[0].number == first.frames[-1].number + 1
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(f"({BIN}/tapeline-vtl cat {directory} {cart.barcode} 2; "
                         f"{BIN}/tapeline-vtl cat {directory} {cart.barcode} 3) | zstd -dc | "
                         f"tar --xattrs --xattrs-include='*' --acls -xpf -", shell=True, cwd=out, capture_output=True)
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert_same_tree(expected, restored_root(out, src))


def test_cat_names_what_is_wrong_in_one_line(tmp_path):
    directory = tmp_path / "lib"
    layout = init_library(directory)
    barcode = sorted(layout)[0]
    blank = cat(directory, barcode, 0)
    assert blank.returncode == 1 and blank.stdout == b""
    assert blank.stderr.decode().count("\n") == 1 and "blank" in blank.stderr.decode()
    unknown = cat(directory, "NOSUCH", 0)
    assert unknown.returncode == 1 and "no cartridge NOSUCH" in unknown.stderr.decode()
