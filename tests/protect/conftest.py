"""Helpers for protect tests: real trees on disk and a byte-for-byte, metadata-for-metadata comparison."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from appliance.protect.files import GroupSpec, SourceSpec
from appliance.store import Store


def tree_state(root: Path) -> dict[bytes, tuple]:
    """Everything a restore must reproduce, keyed by path relative to root (bytes)."""
    root_b = os.fsencode(root)
    out: dict[bytes, tuple] = {}
    inodes: dict[int, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root_b):
        dirnames.sort()
        for name in [b"", *sorted(filenames), *dirnames] if dirpath == root_b else [*sorted(filenames), *dirnames]:
            full = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(full, root_b)
            st = os.lstat(full)
            try:
                xattrs = tuple(sorted((n, os.getxattr(full, n, follow_symlinks=False))
                                      for n in os.listxattr(full, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            content = None
            link = None
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    content = f.read()
                if st.st_nlink > 1:
                    link = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            sparse = stat.S_ISREG(st.st_mode) and st.st_blocks * 512 < st.st_size // 2
            mtime = st.st_mtime_ns if not stat.S_ISLNK(st.st_mode) else st.st_mtime_ns
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                        mtime if not stat.S_ISDIR(st.st_mode) or rel != b"." else None, content, xattrs, link,
                        sparse, st.st_rdev)
    return out


def assert_same_tree(expected: dict, actual_root: Path) -> None:
    actual = tree_state(actual_root)
    assert sorted(actual) == sorted(expected)
    for path, want in expected.items():
        assert actual[path] == want, path


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "store", create=True)
    yield s
    s.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src"
    p.mkdir()
    return p


def group_of(*paths: Path, name: str = "g") -> GroupSpec:
    return GroupSpec(name, tuple(SourceSpec(str(p)) for p in paths))


def restored_root(target: Path, source: Path) -> Path:
    return target / str(source).lstrip("/")


@pytest.fixture
def public_base():
    """An empty directory that the user `nobody` can reach (0755 under the real /tmp; pytest's tmp_path is 0700):
    for tests that run a sync or a restore as an unprivileged user."""
    base = Path(os.path.realpath("/tmp")) / f"tl-public-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)  # whatever the umask
    yield base
    shutil.rmtree(base, ignore_errors=True)


def give_to_nobody(root: Path) -> None:
    """Everything under `root`, `root` included, owned by nobody (uid and gid 65534)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, 65534, 65534)


class Hook(threading.Event):
    """A cancel event whose is_set() (polled by the walk after every entry) runs `action` once, at a chosen
    moment: a real change to the filesystem in the middle of a sync."""

    def __init__(self, action, after: int = 1) -> None:
        super().__init__()
        self.action, self.after, self.calls = action, after, 0

    def is_set(self) -> bool:
        self.calls += 1
        if self.calls == self.after:
            self.action()
        return super().is_set()
