"""The tape restore's writer reports a result only once what it wrote is on disk, and fails with a fix when the disk
refused it. As in tests/protect/test_restore_durability.py, the durability step (syncfs(2) through
`appliance.store.durable.syncfs`) is watched, the real call still running, and a write-back failure is injected at
that call: neither a page not yet on disk nor a failing disk can be made here."""

from __future__ import annotations

import errno
import io
import os
import tarfile

import pytest

from appliance.media.extract import ExtractError, Extractor
from appliance.store import durable


def _stream() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(3):
            info = tarfile.TarInfo(f"d{d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o750, 1_000_000 + d
            tf.addfile(info)
            for f in range(100):
                data = f"file {d}/{f}\n".encode() * (f + 1)
                info = tarfile.TarInfo(f"d{d}/f{f}.txt")
                info.size, info.mtime = len(data), 2_000_000
                tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("big.bin")  # written from the stream by the caller's thread
        info.size = 3 << 20
        tf.addfile(info, io.BytesIO(b"\xab" * info.size))
    return buf.getvalue()


def _extract(stream: bytes, out) -> Extractor:
    ex = Extractor(out)
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tf:
        for info in tf:
            ex.write(info, tf.extractfile(info) if info.isreg() else None)
    return ex


def test_the_result_comes_only_after_every_file_and_directory_was_synced(tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen: list[tuple[int, int, list[int]]] = []
    real = durable.syncfs

    def watched(fd: int) -> None:
        real(fd)
        files = sum(len(names) for _, _, names in os.walk(out))
        seen.append((os.fstat(fd).st_dev, files, [os.stat(out / f"d{d}").st_mtime_ns for d in range(3)]))

    monkeypatch.setattr(durable, "syncfs", watched)
    result = _extract(_stream(), out).close()

    assert result.warnings == [] and result.files == 301
    assert seen, "the extraction never synced what it wrote"
    device, files, dir_times = seen[-1]
    assert device == os.stat(out).st_dev
    assert files == 301, "the last sync ran before every file was in place"
    assert dir_times == [(1_000_000 + d) * 1_000_000_000 for d in range(3)], "directory times set after the sync"


def test_a_write_back_error_is_an_error_with_a_fix(tmp_path, monkeypatch):
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(durable, "syncfs", failing)
    ex = _extract(_stream(), tmp_path / "out")
    with pytest.raises(ExtractError) as err:
        ex.close()
    assert err.value.message == "the restored files could not all be written to disk (Input/output error)"
    assert err.value.fix == "check the destination's disk (kernel log, free space), then restore again"


def test_a_stream_failing_midway_leaves_what_was_restored_finished_and_synced(tmp_path, monkeypatch):
    """The caller's loop fails (a damaged stream): leaving the `with` block finishes the directories, syncs and
    stops the writer thread; the files restored so far are whole."""
    synced: list[int] = []
    real = durable.syncfs
    monkeypatch.setattr(durable, "syncfs", lambda fd: (real(fd), synced.append(fd)))
    stream = _stream()
    out = tmp_path / "out"
    with pytest.raises(tarfile.ReadError):
        with Extractor(out) as ex, tarfile.open(fileobj=io.BytesIO(stream[:len(stream) // 3]), mode="r|") as tf:
            for info in tf:
                ex.write(info, tf.extractfile(info) if info.isreg() else None)

    result = ex.close()
    assert synced and result.files == 300  # the cut is inside big.bin, after every small file
    assert [w.split(" (")[0] for w in result.warnings] == ["big.bin: not restored"]
    assert not (out / "big.bin").exists()  # nothing half written under its name
    for d in range(3):
        assert os.stat(out / f"d{d}").st_mtime_ns == (1_000_000 + d) * 1_000_000_000
        for n in range(100):
            assert (out / f"d{d}" / f"f{n}.txt").read_bytes() == f"file {d}/{n}\n".encode() * (n + 1)
