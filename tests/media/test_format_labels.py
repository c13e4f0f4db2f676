"""Labels: tape files 0 and 1, readable by a person and by Tapeline; foreign data and damage told apart."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from appliance.media.format import (BLOCK_SIZE, LabelError, MediaSetLabel, NotOurLabel, VolumeLabel,
                                    decode_media_set_label, decode_volume_label, encode_media_set_label,
                                    encode_volume_label)

NOW = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=timezone.utc)


def test_volume_label_round_trips_in_one_block_a_person_can_read():
    label = VolumeLabel(barcode="A00001L9", uuid="5f0c2a4e-8a55-4f1e-9d3a-7b2d5c1e0f11", pool="weekly",
                        created=NOW, block_size=BLOCK_SIZE)
    block = encode_volume_label(label)
    assert len(block) == BLOCK_SIZE
    assert decode_volume_label(block) == label
    head = block[:2000].decode(errors="replace")
    assert head.startswith("TAPELINE VOLUME LABEL\n") and "barcode: A00001L9" in head and "pool: weekly" in head


def test_a_label_without_pool_and_a_small_block_size_round_trip():
    label = VolumeLabel(barcode="B00002L8", uuid="u", pool=None, created=NOW, block_size=4096)
    block = encode_volume_label(label)
    assert len(block) == 4096 and decode_volume_label(block) == label


def test_media_set_label_round_trips_with_and_without_a_key():
    for fingerprint in (None, "blake3:0123456789abcdef"):
        label = MediaSetLabel(pool="weekly", media_set="ms-1", sequence=3, key_fingerprint=fingerprint, created=NOW)
        block = encode_media_set_label(label, 65536)
        assert len(block) == 65536 and decode_media_set_label(block) == label


@pytest.mark.parametrize("block", [b"\0" * 512, b"ustar data of another tool" + bytes(100), b"\x28\xb5\x2f\xfd" * 8])
def test_foreign_data_is_not_our_label(block):
    with pytest.raises(NotOurLabel):
        decode_volume_label(block)
    with pytest.raises(NotOurLabel):
        decode_media_set_label(block)


def test_a_damaged_label_is_ours_but_unreadable():
    block = bytearray(encode_volume_label(VolumeLabel("A00001L9", "u", "p", NOW, 4096)))
    block[block.index(b"A00001L9")] = ord("B")
    with pytest.raises(LabelError, match="damaged"):
        decode_volume_label(bytes(block))


def test_a_label_of_the_other_kind_or_a_newer_version_is_a_label_error():
    media = encode_media_set_label(MediaSetLabel("p", "ms", 1, None, NOW), 4096)
    with pytest.raises(LabelError, match="expected a Tapeline volume label"):
        decode_volume_label(media)
    newer = encode_volume_label(VolumeLabel("A00001L9", "u", "p", NOW, 4096, version=1)).replace(
        b"format: 1\n", b"format: 9\n")
    with pytest.raises(LabelError, match="newer"):
        decode_volume_label(newer)
