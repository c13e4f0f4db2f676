"""Set header blocks, block packing of frames, index and catalog files: what tools and Tapeline read back."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone

import pytest
import zstandard

from appliance.media.format import (CatalogPart, CatalogSet, FormatError, Frame, IndexEntry, MediaSetCatalog, MediaSetLabel,
                                    SetHeader, SetIndex, SetStream, decode_catalog, decode_index, decode_set_header,
                                    encode_catalog, encode_index, NotOurLabel, padding, skippable_frame)

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
BS = 4096


def header(**kw) -> SetHeader:
    values = dict(set_uuid="0b6e8f7a-set", group="docs", point=7, snapshot_id="snap-7", created=NOW, kind="full",
                  part=1, tape_file=2, pool="weekly", media_set="ms-1", block_size=BS, encrypted=False)
    values.update(kw)
    return SetHeader(**values)


def frames(sizes: list[int]) -> list[Frame]:
    out = []
    for n, size in enumerate(sizes):
        raw = os.urandom(size // 2) * 2
        out.append(Frame(zstandard.ZstdCompressor().compress(raw), len(raw), n, []))
    return out


def write_stream(stream: SetStream, fs: list[Frame]) -> bytes:
    pieces = [stream.header_block()] + [stream.add(f) for f in fs] + [stream.finish()]
    assert all(len(p) % BS == 0 for p in pieces)  # whole blocks, as many as each frame completed
    return b"".join(pieces)


def test_header_block_is_one_block_a_person_reads_and_tapeline_decodes():
    block = SetStream(header(), first_block=40, block_size=BS).header_block()
    assert len(block) == BS and decode_set_header(block) == header()
    text = block.decode("latin-1")
    assert "mt -f /dev/nst0 fsf 2" in text and "dd if=/dev/nst0 bs=4k | zstd -dc | tar" in text and "docs" in text


@pytest.mark.parametrize("gap", [0, 1, 7, 8, 9, BS - 1])
def test_padding_brings_any_length_to_whole_blocks(gap):
    length = 3 * BS - gap if gap else 3 * BS
    pad = padding(length, BS)
    assert (length + len(pad)) % BS == 0 and (gap == 0) == (pad == b"")
    assert zstandard.ZstdDecompressor().decompressobj().decompress(pad) == b""


def test_a_set_file_is_one_zstd_stream_and_every_frame_is_found_where_recorded():
    fs = frames([10_000, 1, 30_000, 5_000])
    stream = SetStream(header(), first_block=40, block_size=BS)
    data = write_stream(stream, fs)
    run = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)
    expected = b"".join(zstandard.ZstdDecompressor().decompress(f.data) for f in fs)
    assert run.stdout == expected
    assert stream.blocks == len(data) // BS
    for f, pos in zip(fs, stream.frames):
        at = (pos.block - 40) * BS + pos.offset
        assert data[at:at + pos.length] == f.data and pos.number == f.number and pos.raw_length == f.raw_length


@pytest.mark.parametrize("tail", [1, 7, 8])
def test_a_tail_too_small_for_a_skippable_header_still_decodes(tail):
    """Frames that end 1-7 bytes short of a block boundary: the padding runs through one more block."""
    f = frames([100])[0]
    body = BS - tail - len(f.data)  # a second frame so the data ends `tail` bytes before the block's end
    filler = zstandard.ZstdCompressor(level=1).compress(b"")
    gap_frame = Frame(skippable_frame(bytes(body - 8 - len(filler))) + filler, 0, 1, [])
    stream = SetStream(header(), first_block=0, block_size=BS)
    data = write_stream(stream, [f, gap_frame])
    assert len(data) % BS == 0
    subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)


def test_index_round_trips_with_a_name_that_is_not_utf8_and_zstd_reads_it():
    stream = SetStream(header(), first_block=40, block_size=BS)
    write_stream(stream, frames([1000, 2000]))
    entries = [IndexEntry(b"tmp/docs/caf\xe9.txt", "file", 5, 0o100644, 1000, 1000, 1_700_000_000_123_456_789,
                          b"\x01" * 32, 0, 0, 1),
               IndexEntry(b"tmp/docs", "dir", 0, 0o40755, 0, 0, 1, None, 0, 1536, 1, in_set="older-set"),
               IndexEntry(b"tmp/docs/hard", "hardlink", 0, 0o100644, 0, 0, 1, None, 0, 2048, 1,
                          link=b"tmp/docs/caf\xe9.txt")]
    index = SetIndex(header(), stream.frames, entries, complete=True)
    data = encode_index(index)
    assert len(data) % BS == 0 and decode_index(data) == index
    text = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout.decode()
    assert "tapeline-set-index" in text and "tmp/docs" in text


def test_each_member_line_is_the_json_of_its_record_with_the_documented_keys():
    """docs/tape-format.md's member record, key for key: what `jq` or any JSON reader of `zstd -dc` sees."""
    entries = [IndexEntry(b'tmp/q"uote\\back\nline \xe9\x01', "file", 5, 0o100644, 1000, 1000, 17, b"\xab" * 32, 3, 512, 2),
               IndexEntry("tmp/ünï €".encode(), "dir", 0, 0o40755, 0, 0, 1, None, 0, 1536, 1, in_set='set "9"'),
               IndexEntry(b"tmp/l", "symlink", 0, 0o120777, 0, 0, 1, None, 0, 2048, 1, link=b"../t\xffarget")]
    data = encode_index(SetIndex(header(), [], entries, complete=True))
    lines = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout.decode().splitlines()
    expected = [{"m": e.path.decode("utf-8", "surrogateescape"), "type": e.type, "size": e.size, "mode": e.mode,
                 "uid": e.uid, "gid": e.gid, "mtime_ns": e.mtime_ns, "digest": e.digest.hex() if e.digest else None,
                 "frame": e.frame, "offset": e.offset, "part": e.part, "in_set": e.in_set,
                 **({"link": e.link.decode("utf-8", "surrogateescape")} if e.link else {})} for e in entries]
    assert lines[1:] == [json.dumps(r, separators=(",", ":")) for r in expected]
    assert [json.loads(line) for line in lines[1:]] == expected


def test_catalog_round_trips():
    label = MediaSetLabel("weekly", "ms-1", 2, None, NOW)
    catalog = MediaSetCatalog(label, [CatalogSet(header(), [CatalogPart(1, "A00001L9", 1, 2, 3, 40, 100),
                                                            CatalogPart(2, "A00002L9", 2, 2, 3, 4, 7)], True)])
    data = encode_catalog(catalog, BS)
    assert len(data) % BS == 0 and decode_catalog(data) == catalog


def test_an_index_that_is_damaged_or_not_an_index_is_named():
    stream = SetStream(header(), first_block=40, block_size=BS)
    write_stream(stream, frames([1000]))
    data = bytearray(encode_index(SetIndex(header(), stream.frames, [], complete=False)))
    with pytest.raises(NotOurLabel):
        decode_catalog(bytes(data))
    data[20] ^= 0xFF
    with pytest.raises(FormatError, match="damaged"):
        decode_index(bytes(data))
    with pytest.raises(NotOurLabel):
        decode_index(padding(10, BS)[:0] + zstandard.ZstdCompressor().compress(b"hello\n"))
    with pytest.raises(NotOurLabel):
        decode_index(bytes(BS))
