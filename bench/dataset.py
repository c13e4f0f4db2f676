"""Build the benchmark dataset (idempotent): ~100k real small files, one random, one real-text, one sparse file and
one random 1 MiB file (the tape bench restores it alone).

    .venv/bin/python bench/dataset.py DIR   # ~1.5 GB: small/..., large/{random.bin,text.txt,sparse.img,one-mib.bin}
    .venv/bin/python bench/dataset.py DIR --files N  # N tiny distinct files in directories of 1000 (memory test)

Small files are copies of system trees (/usr/share, /usr/lib/python3*, /usr/include, /usr/lib), regular files up
to 256 KiB and symlinks, until 100k files. A stamp file records what was built; a second run with the same
arguments does nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

TREES = ["/usr/share", "/usr/lib/python3.11", "/usr/lib/python3", "/usr/include", "/usr/lib"]
SMALL_FILES = 100_000
SMALL_LIMIT = 256 << 10
RANDOM_SIZE = 400 << 20
TEXT_SIZE = 200 << 20
SPARSE_SIZE, SPARSE_DATA = 1 << 30, 8
ONE_MIB = "large/one-mib.bin"


def _copy_small(dest: Path) -> int:
    count = 0
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            if dest.as_posix().startswith(dirpath):
                continue
            target = dest / dirpath.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                out = target / name
                if out.exists() or out.is_symlink():
                    continue
                try:
                    st = os.lstat(src)
                    if os.path.islink(src):
                        os.symlink(os.readlink(src), out)
                    elif os.path.isfile(src) and st.st_size <= SMALL_LIMIT:
                        shutil.copy2(src, out)
                    else:
                        continue
                except OSError:
                    continue
                count += 1
                if count >= SMALL_FILES:
                    return count
    return count


def _text(out: Path) -> None:
    written = 0
    with open(out, "wb") as f:
        while written < TEXT_SIZE:
            for dirpath, _dirs, files in os.walk("/usr/share/doc"):
                for name in sorted(files):
                    if name.endswith((".gz", ".png", ".jpg")):
                        continue
                    try:
                        data = Path(dirpath, name).read_bytes()
                    except OSError:
                        continue
                    f.write(data)
                    written += len(data)
                    if written >= TEXT_SIZE:
                        return
            for dirpath, _dirs, files in os.walk("/usr/lib/python3.11"):
                for name in sorted(files):
                    if name.endswith(".py"):
                        data = Path(dirpath, name).read_bytes()
                        f.write(data)
                        written += len(data)
                        if written >= TEXT_SIZE:
                            return


def _large(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    with open(dest / "random.bin", "wb") as f:
        for _ in range(RANDOM_SIZE >> 24):
            f.write(rng.randbytes(1 << 24))
    _text(dest / "text.txt")
    with open(dest / "sparse.img", "wb") as f:
        f.truncate(SPARSE_SIZE)
        for i in range(SPARSE_DATA):  # 8 data islands of 1 MiB spread over 1 GiB
            f.seek(i * (SPARSE_SIZE // SPARSE_DATA))
            f.write(rng.randbytes(1 << 20))
    _one_mib(dest / "one-mib.bin")


def _one_mib(path: Path) -> None:
    path.write_bytes(random.Random(2).randbytes(1 << 20))


def _tiny(dest: Path, n: int) -> None:
    for i in range(n):
        d = dest / f"d{i // 1000:05d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i % 1000:03d}").write_bytes(b"tiny file %d\n" % i)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--files", type=int, help="tiny files instead of the standard dataset")
    args = ap.parse_args(argv)
    stamp = args.dir / ".dataset-complete"
    want = f"tiny {args.files}" if args.files else f"standard {SMALL_FILES} {SMALL_LIMIT} {RANDOM_SIZE} {TEXT_SIZE}"
    if stamp.exists() and stamp.read_text() == want:
        if not args.files and not (args.dir / ONE_MIB).exists():  # a dataset built before that file was added
            _one_mib(args.dir / ONE_MIB)
        print(f"dataset in {args.dir} is ready ({want})", file=sys.stderr)
        return 0
    if args.dir.exists():
        shutil.rmtree(args.dir)
    args.dir.mkdir(parents=True)
    if args.files:
        _tiny(args.dir / "tiny", args.files)
    else:
        count = _copy_small(args.dir / "small")
        _large(args.dir / "large")
        print(f"{count} small files copied", file=sys.stderr)
    stamp.write_text(want)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
