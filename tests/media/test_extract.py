"""The tape restore's writer: tar streams made by GNU tar and by Python's tarfile, read as the tape reader reads
them (tarfile's streaming mode), restored below a target and compared with the tree they came from."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from appliance.media.extract import ExtractError, Extractor
from tests.protect.conftest import public_base  # noqa: F401 (a fixture)

NS = 1_000_000_000
ROOT = os.geteuid() == 0
GNU_TAR = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "--sparse", "--format=pax", "--atime-preserve=system",
           "-cf", "-"]


def extract(stream: bytes, target: Path, overwrite: bool = False):
    ex = Extractor(target, overwrite)
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tf:
        for info in tf:
            ex.write(info, tf.extractfile(info) if info.isreg() else None)
    return ex.close()


def gnu_tar(src: Path) -> bytes:
    return subprocess.run([*GNU_TAR, "-C", str(src), "."], check=True, capture_output=True).stdout


def setfacl(*args: str | Path) -> None:
    subprocess.run(["setfacl", *map(str, args)], check=True)


def build_tree(root: Path) -> None:
    """Every kind of entry and metadata a tape set carries."""
    root.mkdir()
    docs = root / "docs"
    docs.mkdir()
    (docs / "report.txt").write_bytes(b"quarterly report\n" * 300)
    (docs / "empty").write_bytes(b"")
    (docs / "big.bin").write_bytes(os.urandom(3 << 20))  # several reads of the content
    os.link(docs / "report.txt", docs / "report-again.txt")
    (root / "other").mkdir()
    os.link(docs / "report.txt", root / "other" / "report-link.txt")
    os.chown(docs / "report.txt", 1234, 5678)
    shared = root / "shared"
    shared.mkdir()
    (shared / "plan.txt").write_bytes(b"plan\n")
    setfacl("-m", "u:bin:r-x,g:daemon:rw-", shared / "plan.txt")
    setfacl("-d", "-m", "u:bin:rwx,g:daemon:r-x", shared)
    os.setxattr(shared / "plan.txt", "user.comment", b"\x00\xffnot text")
    os.setxattr(shared, "user.project", b"tapeline")
    with open(root / "sparse.img", "wb") as f:  # holes at the start, between and at the end
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"first data" * 500)
        f.seek(40 << 20)
        f.write(os.urandom(70_000))
    os.symlink("docs", root / "link-to-docs")
    os.symlink("/nonexistent/target", docs / "dangling")
    os.lchown(docs / "dangling", 4321, 8765)
    os.mkfifo(root / "pipe", 0o640)
    os.chown(root / "pipe", 65534, 65534)
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    odd = root / os.fsdecode(b"caf\xe9")
    odd.mkdir()
    (odd / os.fsdecode(b"na\xefve \xff.txt")).write_bytes(b"latin-1 names\n")
    tool = root / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4755)  # set-user-ID survives: the owner is set first
    locked = root / "locked"
    locked.mkdir()
    (locked / "inside").write_bytes(b"kept\n")
    os.chmod(root / "docs" / "empty", 0o600)
    stamp(root)
    os.chmod(locked, 0o555)


def stamp(root: Path) -> None:
    """Distinct nanosecond times on everything, directories last (bottom up)."""
    for i, (dirpath, dirnames, filenames) in enumerate(os.walk(os.fsencode(root), topdown=False)):
        for j, name in enumerate(filenames + dirnames):
            t = 1_600_000_000 * NS + i * 1000 * NS + j * NS + 123_456_789
            os.utime(os.path.join(dirpath, name), ns=(t + 7, t), follow_symlinks=False)
        t = 1_500_000_000 * NS + i * NS + 987_654_321
        os.utime(dirpath, ns=(t + 7, t))


def state(root: Path) -> dict[bytes, tuple]:
    """What a user would compare, by path: type, mode, owner, size, mtime (ns), content or link target, xattrs,
    device number, which earlier path shares the inode, and whether the file has holes."""
    root_b = os.fsencode(root)
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root_b):
        for name in [b"", *filenames, *dirnames] if dirpath == root_b else [*filenames, *dirnames]:
            full = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(full, root_b)
            st = os.lstat(full)
            content = holes = link = None
            if stat.S_ISREG(st.st_mode):
                fd = os.open(full, os.O_RDONLY | os.O_NOATIME)
                with open(fd, "rb") as f:
                    content = f.read()
                    holes = st.st_size > 0 and os.lseek(f.fileno(), 0, os.SEEK_HOLE) < st.st_size
                link = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            xattrs = sorted((n, os.getxattr(full, n, follow_symlinks=False))
                            for n in os.listxattr(full, follow_symlinks=False))
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                        st.st_mtime_ns, content, xattrs, st.st_rdev, link, holes)
    return out


def getfacl(root: Path) -> str:
    return subprocess.run(["getfacl", "-R", "-P", "."], cwd=root, check=True, capture_output=True).stdout.decode(
        "utf-8", "surrogateescape")


def atimes_in(stream: bytes) -> dict[bytes, int]:
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tf:
        return {os.path.normpath(os.fsencode(i.name)): int(i.pax_headers["atime"].replace(".", ""))
                for i in tf if "atime" in i.pax_headers and not i.islnk()}


@pytest.mark.skipif(not ROOT, reason="owners and devices are restored as root only; CI runs as root")
def test_a_gnu_tar_stream_comes_back_identical(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    build_tree(src)
    stream = gnu_tar(src)
    expected = state(src)

    result = extract(stream, out)

    for path, atime in atimes_in(stream).items():  # before anything reads the restored tree (and sets atimes)
        assert os.lstat(os.path.join(os.fsencode(out), path)).st_atime_ns == atime, path
    assert atimes_in(stream)[b"tool"] == os.lstat(src / "tool").st_mtime_ns + 7  # the source's own atime
    assert result.warnings == []
    assert state(out) == expected
    assert getfacl(out) == getfacl(src)
    assert "user:bin:r-x" in getfacl(out) and "default:user:bin:rwx" in getfacl(out)
    sparse = os.stat(out / "sparse.img")
    assert sparse.st_blocks * 512 < 1 << 20  # 64 MiB with ~75 kB of data
    assert result.files == len(expected) - sum(1 for v in expected.values() if stat.S_ISDIR(v[0]))
    report = os.stat(out / "docs" / "report.txt")
    assert report.st_nlink == 3 and os.stat(out / "other" / "report-link.txt").st_ino == report.st_ino
    assert os.lstat(out / "tool").st_mode & stat.S_ISUID
    assert (out / os.fsdecode(b"caf\xe9") / os.fsdecode(b"na\xefve \xff.txt")).read_bytes() == b"latin-1 names\n"


@pytest.mark.skipif(not ROOT, reason="owners and devices are restored as root only; CI runs as root")
def test_the_same_stream_again_with_overwrite_replaces_everything(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    build_tree(src)
    stream = gnu_tar(src)
    expected = state(src)
    extract(stream, out)
    before = os.stat(out / "docs" / "report.txt").st_ino

    again = extract(stream, out)
    assert len(again.warnings) == len(expected) - sum(1 for v in expected.values() if stat.S_ISDIR(v[0]))
    assert all("restore with `--overwrite` to replace it" in w for w in again.warnings)

    result = extract(stream, out, overwrite=True)

    assert result.warnings == [] and state(out) == expected
    assert os.stat(out / "docs" / "report.txt").st_ino != before
    assert [p for p in out.rglob(".tapeline-partial-*")] == []


def test_a_python_tarfile_stream_with_pax_metadata(tmp_path):
    """Times, xattrs, ACLs and names as pax headers that Python's tarfile writes, read back exactly."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name: bytes, kind: bytes, data: bytes = b"", **fields) -> None:
            info = tarfile.TarInfo(os.fsdecode(name))
            info.type, info.size, info.mode = kind, len(data), fields.pop("mode", 0o644)
            info.uid, info.gid = os.geteuid(), os.getegid()
            info.pax_headers = fields.pop("pax", {})
            for key, value in fields.items():
                setattr(info, key, value)
            tf.addfile(info, io.BytesIO(data) if data else None)

        add(b"dir", tarfile.DIRTYPE, mode=0o750, pax={"mtime": "1234567890.000000001", "atime": "1234567890.5"})
        add(b"dir/notes.txt", tarfile.REGTYPE, b"notes\n", mode=0o640,
            pax={"mtime": "1700000000.999999999", "atime": "1700000001.000000002", "SCHILY.xattr.user.tag": "blue",
                 "SCHILY.acl.access": "user::rw-,user:bin:r--,group::r--,mask::r--,other::---"})
        add(b"dir/same.txt", tarfile.LNKTYPE, linkname="dir/notes.txt")
        add(b"dir/to-notes", tarfile.SYMTYPE, linkname="notes.txt", pax={"mtime": "1600000000.25"})
        add(b"\xe9t\xe9.bin", tarfile.REGTYPE, b"\xff" * 10, mtime=1_000_000_000)
        add(b"pipe", tarfile.FIFOTYPE, mode=0o600, pax={"mtime": "1650000000.123456789"})
    result = extract(buf.getvalue(), tmp_path / "out")

    out = tmp_path / "out"
    assert result.warnings == [] and result.files == 5 and result.bytes == 16
    notes = os.stat(out / "dir" / "notes.txt")
    assert (notes.st_mtime_ns, notes.st_atime_ns) == (1_700_000_000_999_999_999, 1_700_000_001_000_000_002)
    assert stat.S_IMODE(notes.st_mode) == 0o640
    assert os.getxattr(out / "dir" / "notes.txt", "user.tag") == b"blue"
    d = os.stat(out / "dir")  # before anything reads the directory (and sets its atime)
    assert (d.st_mtime_ns, d.st_atime_ns, stat.S_IMODE(d.st_mode)) == (1_234_567_890_000_000_001,
                                                                         1_234_567_890_500_000_000, 0o750)
    assert "user:bin:r--" in getfacl(out / "dir")
    assert os.stat(out / "dir" / "same.txt").st_ino == notes.st_ino
    assert os.readlink(out / "dir" / "to-notes") == "notes.txt"
    assert os.lstat(out / "dir" / "to-notes").st_mtime_ns == 1_600_000_000_250_000_000
    assert (out / os.fsdecode(b"\xe9t\xe9.bin")).read_bytes() == b"\xff" * 10
    assert os.stat(out / os.fsdecode(b"\xe9t\xe9.bin")).st_mtime_ns == 1_000_000_000 * NS
    assert stat.S_ISFIFO(os.lstat(out / "pipe").st_mode)


def small_stream(*members: tuple[str, bytes | str | None]) -> bytes:
    """A stream of regular files (bytes), symlinks (str: the target) and directories (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if what is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif isinstance(what, str):
                info.type, info.linkname = tarfile.SYMTYPE, what
            else:
                info.size = len(what)
            tf.addfile(info, io.BytesIO(what) if isinstance(what, bytes) else None)
    return buf.getvalue()


def test_a_symlink_planted_in_the_target_is_not_followed(tmp_path):
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    os.symlink(outside, out / "docs")
    stream = small_stream(("docs/a.txt", b"a"), ("b.txt", b"b"))

    result = extract(stream, out)

    assert list(outside.iterdir()) == []
    assert (out / "b.txt").read_bytes() == b"b"
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("docs/a.txt: not restored (docs exists and is a symlink (not followed")

    result = extract(stream, out, overwrite=True)  # the link itself is replaced, never what it names
    assert list(outside.iterdir()) == [] and result.warnings == []
    assert not (out / "docs").is_symlink() and (out / "docs" / "a.txt").read_bytes() == b"a"


def test_a_symlink_from_the_stream_is_not_followed_by_a_later_member(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    stream = small_stream(("escape", str(outside)), ("escape/evil.sh", b"#!/bin/sh\n"))

    result = extract(stream, tmp_path / "out")

    assert list(outside.iterdir()) == []
    assert [w.split(" (")[0] for w in result.warnings] == ["escape/evil.sh: not restored"]


@pytest.mark.parametrize("name", ["../up.txt", "a/../../up.txt", "/abs.txt", "./"])
def test_names_leaving_the_target_are_refused(tmp_path, name):
    out = tmp_path / "deep" / "out"
    result = extract(small_stream((name, b"x"), ("ok.txt", b"ok")), out)

    assert len(result.warnings) == 1 and result.warnings[0].startswith(f"{name}: not restored (")
    assert "refused" in result.warnings[0] or "target directory itself" in result.warnings[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "ok.txt", "out"]


def test_existing_entries_are_refused_without_overwrite_and_replaced_with_it(tmp_path):
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "f.txt").write_bytes(b"mine")
    os.link(out / "d" / "f.txt", tmp_path / "other-name")  # shows the old file is replaced, not rewritten
    os.symlink("nowhere", out / "d" / "link")
    stream = small_stream(("d", None), ("d/f.txt", b"from tape"), ("d/link", "f.txt"), ("d/new.txt", b"new"))

    result = extract(stream, out)

    assert (out / "d" / "f.txt").read_bytes() == b"mine" and os.readlink(out / "d" / "link") == "nowhere"
    assert (out / "d" / "new.txt").read_bytes() == b"new"
    assert result.warnings == [f"d/{n}: exists, not replaced (restore with `--overwrite` to replace it)"
                               for n in ("f.txt", "link")]

    result = extract(stream, out, overwrite=True)

    assert result.warnings == [] and result.files == 3
    assert (out / "d" / "f.txt").read_bytes() == b"from tape" and os.readlink(out / "d" / "link") == "f.txt"
    assert (tmp_path / "other-name").read_bytes() == b"mine"
    assert [p.name for p in (out / "d").iterdir() if p.name.startswith(".tapeline")] == []


def test_a_directory_with_content_is_kept_where_the_stream_has_a_file(tmp_path):
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    (out / "x" / "keep").write_bytes(b"k")

    result = extract(small_stream(("x", b"file")), out, overwrite=True)

    assert (out / "x" / "keep").read_bytes() == b"k"
    assert result.warnings[0].startswith("x: a directory with content")


def test_directory_metadata_is_applied_after_its_last_member(tmp_path):
    """A stream that leaves a directory and comes back to it: the directory's time and mode are still the set's."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind in (("d", tarfile.DIRTYPE), ("d/1", tarfile.REGTYPE), ("e/2", tarfile.REGTYPE),
                           ("d/3", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, 0o555 if kind == tarfile.DIRTYPE else 0o644, 1_000_000
            tf.addfile(info)
    result = extract(buf.getvalue(), tmp_path / "out")

    d = os.stat(tmp_path / "out" / "d")
    assert result.warnings == [] and sorted(os.listdir(tmp_path / "out" / "d")) == ["1", "3"]
    assert (d.st_mtime_ns, stat.S_IMODE(d.st_mode)) == (1_000_000 * NS, 0o555)


def test_a_hardlink_to_a_member_not_restored_is_a_warning(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("b.txt")
        info.type, info.linkname = tarfile.LNKTYPE, "a.txt"
        tf.addfile(info)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_bytes(b"not from this restore")

    result = extract(buf.getvalue(), out)

    assert not (out / "b.txt").exists()
    assert result.warnings == ["b.txt: not restored (a hardlink to a.txt, which this restore did not write: "
                               "restore a.txt with it)"]


def test_a_member_that_cannot_be_restored_is_named_and_the_rest_comes_back(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, acl in (("bad.txt", "user::rw-,user:no-such-user-here:r--,group::r--,other::---"),
                          ("good.txt", "user::rw-,group::r--,other::---")):
            info = tarfile.TarInfo(name)
            info.size, info.pax_headers = 2, {"SCHILY.acl.access": acl}
            tf.addfile(info, io.BytesIO(b"ok"))
    result = extract(buf.getvalue(), tmp_path / "out")

    assert (tmp_path / "out" / "good.txt").read_bytes() == b"ok" and not (tmp_path / "out" / "bad.txt").exists()
    assert result.warnings == ["bad.txt: not restored (ACL names the unknown user 'no-such-user-here': create the "
                               "user, then restore again)"]
    assert result.files == 1


def test_a_target_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ExtractError) as err:
        Extractor(tmp_path / "file" / "below", False)
    assert str(err.value).startswith(f"restore target {tmp_path}/file/below cannot be created or opened (")
    assert err.value.fix == "give --to a directory that can be written"


def test_many_files_in_batches_leave_every_directory_with_its_own_time(tmp_path):
    """Files are handed to the writer thread in batches; each directory's time is still set after its last file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(3):
            info = tarfile.TarInfo(f"d{d}")
            info.type, info.mode, info.pax_headers = tarfile.DIRTYPE, 0o755, {"mtime": f"{1_000_000 + d}.000000042"}
            tf.addfile(info)
            for n in range(150):
                info = tarfile.TarInfo(f"d{d}/f{n}")
                info.size = n
                tf.addfile(info, io.BytesIO(bytes(n)))
    result = extract(buf.getvalue(), tmp_path / "out")

    assert result.warnings == [] and result.files == 450 and result.bytes == 3 * sum(range(150))
    for d in range(3):
        assert os.stat(tmp_path / "out" / f"d{d}").st_mtime_ns == (1_000_000 + d) * NS + 42
        assert len(os.listdir(tmp_path / "out" / f"d{d}")) == 150


def test_not_as_root_owners_and_devices_are_warnings(public_base):
    """An unprivileged restore keeps the restoring user as owner and says so once; a device cannot be made."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind in (("a.txt", tarfile.REGTYPE), ("b.txt", tarfile.REGTYPE), ("null", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.devmajor, info.devminor = kind, 1234, 5678, 1, 3
            tf.addfile(info)
    (public_base / "stream.tar").write_bytes(buf.getvalue())
    out = public_base / "out"
    out.mkdir()
    os.chown(out, 65534, 65534)
    code = (
        "import json, sys, tarfile, os\n"
        "from pathlib import Path\n"
        "from appliance.media.extract import Extractor\n"
        "os.setgid(65534); os.setuid(65534)  # after the imports: the interpreter's files may be root's only\n"
        f"ex = Extractor(Path({str(out)!r}))\n"
        f"with tarfile.open({str(public_base / 'stream.tar')!r}, mode='r|') as tf:\n"
        "    for info in tf:\n"
        "        ex.write(info, tf.extractfile(info) if info.isreg() else None)\n"
        "r = ex.close()\n"
        "print(json.dumps([r.files, r.warnings]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    files, warnings = json.loads(run.stdout)
    assert files == 2 and os.stat(out / "a.txt").st_uid == 65534
    assert warnings == ["null: device not restored (creating a device needs root)",
                        "2 entries (the first a.txt) belong to other users in the set and now belong to the "
                        "restoring user: restore as root to restore owners"]


def test_members_without_acls_lose_what_an_existing_directory_would_give_them(tmp_path):
    """A directory of the target with a default ACL makes what is created in it inherit ACLs: a member that had none
    comes back without them, with its own mode; a member with an ACL gets its own."""
    out = tmp_path / "out"
    (out / "shared").mkdir(parents=True)
    setfacl("-d", "-m", "u:bin:rwx,g:daemon:rwx", out / "shared")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, mode, pax in (
                ("shared/plain.txt", tarfile.REGTYPE, 0o640, {}),
                ("shared/own-acl.txt", tarfile.REGTYPE, 0o640,
                 {"SCHILY.acl.access": "user::rw-,user:daemon:r--,group::r--,mask::r--,other::---"}),
                ("shared/sub", tarfile.DIRTYPE, 0o750, {}),
                ("shared/sub/deeper.txt", tarfile.REGTYPE, 0o600, {}),
                ("shared/pipe", tarfile.FIFOTYPE, 0o600, {})):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.pax_headers = kind, mode, pax
            tf.addfile(info)

    result = extract(buf.getvalue(), out)

    assert result.warnings == []
    for name, mode in (("plain.txt", 0o640), ("sub", 0o750), ("sub/deeper.txt", 0o600), ("pipe", 0o600)):
        path = out / "shared" / name
        assert stat.S_IMODE(os.lstat(path).st_mode) == mode, name
        assert [n for n in os.listxattr(path) if n.startswith("system.posix_acl")] == [], name
    assert "user:daemon:r--" in getfacl(out / "shared")
