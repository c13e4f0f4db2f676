"""Encrypted sets: frames sealed with AES-256-GCM in skippable frames, opened by Tapeline with the key, and by the
standard tools with the decrypt step; a wrong key, an altered frame or a moved frame never opens."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import datetime, timezone

import pytest

from appliance.media.archive import ArchiveWriter, members_from_tree, read_frames
from appliance.media.crypto import (CryptoError, FrameCipher, create_key_file, decrypt_stream, key_fingerprint,
                                    load_key)
from appliance.media.format import SetHeader, SetStream, decode_set_header
from tests.protect.conftest import assert_same_tree, restored_root, tree_state

BS = 64 * 1024
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


def header() -> SetHeader:
    return SetHeader("set-9", "docs", 3, "snap-3", NOW, "full", 1, 2, "vault", "ms-2", BS, encrypted=True)


def small_tree(root):
    root.mkdir()
    (root / "a.txt").write_bytes(b"secret text\n" * 5000)
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    os.utime(root / "a.txt", ns=(1, 1_600_000_000_123_456_789))


def encrypted_set(src, key: bytes) -> tuple[bytes, SetStream]:
    writer = ArchiveWriter(frame_size=128 << 10, cipher=FrameCipher(key, "set-9"))
    frames = [f for m in members_from_tree(src) for f in writer.add(m)] + list(writer.close(end=True))
    stream = SetStream(header(), 0, BS)
    blocks = [stream.header_block()] + [stream.add(f) for f in frames] + [stream.finish()]
    return b"".join(blocks), stream


def test_key_files_are_private_and_named_by_fingerprint(tmp_path):
    fingerprint = create_key_file(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    key = load_key(tmp_path / "k")
    assert len(key) == 32 and key_fingerprint(key) == fingerprint and key.hex() not in fingerprint
    with pytest.raises(CryptoError, match="never replaced"):
        create_key_file(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(CryptoError, match="chmod 600"):
        load_key(tmp_path / "k")


def test_an_encrypted_set_restores_with_the_decrypt_step_and_gnu_tar(tmp_path):
    src = tmp_path / "src"
    small_tree(src)
    key = os.urandom(32)
    data, stream = encrypted_set(src, key)
    assert b"secret text" not in data and decode_set_header(data[:BS]).encrypted
    assert "decrypt --key" in data[:BS].decode("latin-1")
    # without the key the stream is valid zstd that holds nothing: no plaintext leaks, no tool crashes
    assert subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout == b""
    plain = io.BytesIO()
    assert decrypt_stream(key, io.BytesIO(data), plain) == len(stream.frames)
    out = tmp_path / "out"
    out.mkdir()
    tar = subprocess.run("zstd -dc | tar --xattrs --xattrs-include='*' --acls -xpf -", shell=True, cwd=out,
                         input=plain.getvalue(), capture_output=True)
    assert tar.returncode == 0 and not tar.stderr, tar.stderr
    assert_same_tree(tree_state(src), restored_root(out, src))


def test_tapeline_reads_an_encrypted_frame_by_its_position_with_the_key(tmp_path):
    src = tmp_path / "src"
    small_tree(src)
    key = os.urandom(32)
    data, stream = encrypted_set(src, key)
    blocks = [data[i:i + BS] for i in range(0, len(data), BS)]
    last = stream.frames[-1]
    raw = list(read_frames(iter(blocks[last.block:]), last.offset, FrameCipher(key, "set-9"), frames=[last]))
    assert len(raw[0]) == last.raw_length
    streamed = b"".join(read_frames(iter(blocks), 0, FrameCipher(key, "set-9")))
    assert streamed.endswith(raw[0])


def test_a_wrong_key_an_altered_frame_or_another_set_never_opens(tmp_path):
    src = tmp_path / "src"
    small_tree(src)
    key = os.urandom(32)
    data, stream = encrypted_set(src, key)
    first = stream.frames[0]
    sealed = data[first.block * BS + first.offset:][:first.length]
    with pytest.raises(CryptoError, match="another key"):
        FrameCipher(os.urandom(32)).open(sealed)
    altered = bytearray(sealed)
    altered[-20] ^= 1
    with pytest.raises(CryptoError, match="does not open"):
        FrameCipher(key).open(bytes(altered))
    with pytest.raises(CryptoError, match="another set"):
        FrameCipher(key, "set-10").open(sealed)
    with pytest.raises(CryptoError, match="where frame 5 was expected"):
        FrameCipher(key, "set-9").open(sealed, 5)
    with pytest.raises(CryptoError, match="not an encrypted Tapeline set"):
        decrypt_stream(key, io.BytesIO(b"\x28\xb5\x2f\xfd" + bytes(100)), io.BytesIO())
