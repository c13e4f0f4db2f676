"""pax archive encoding as GNU tar writes it: ustar headers with pax extended headers, times to the nanosecond,
POSIX ACLs between the kernel's xattr form and GNU tar's SCHILY.acl.* text, and the names of sparse members.

Headers are encoded here, not by tarfile: its encoder costs ~100 us a member, a third of a tree of small files'
archiving time. Reading stays with tarfile (`archive.read_members`).
"""

from __future__ import annotations

import functools
import grp
import pwd
import struct
import tarfile
import zlib
from collections.abc import Iterable

import blake3

from appliance.errors import TapelineError

BLOCK = tarfile.BLOCKSIZE
ACL_ACCESS, ACL_DEFAULT = b"system.posix_acl_access", b"system.posix_acl_default"
ENCODING, ERRORS = "utf-8", "surrogateescape"


class ArchiveError(TapelineError):
    """A member that cannot be archived as announced, or a stream that is not what the index says."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message, fix)


def pax_time(ns: int) -> str:
    """A pax time record value with all nine decimals (GNU tar reads them back to the nanosecond)."""
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def pax_time_ns(value: str) -> int:
    sign = -1 if value.startswith("-") else 1
    whole, _, frac = value.lstrip("-").partition(".")
    return sign * (int(whole or 0) * 1_000_000_000 + int((frac + "000000000")[:9]))


def text(raw: bytes) -> str:
    return raw.decode(ENCODING, ERRORS)


# ---- POSIX ACLs: the kernel's xattr form <-> the text GNU tar keeps in SCHILY.acl.* ----------------------------
_ACL_VERSION = 2
_ACL_HEAD = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TAG_TEXT = {_USER_OBJ: "user", _USER: "user", _GROUP_OBJ: "group", _GROUP: "group", _MASK: "mask", _OTHER: "other"}


def acl_text(blob: bytes) -> str:
    """`user::rw-,user:1000:r--,group::r--,mask::r--,other::r--` from a system.posix_acl_* value (numeric ids:
    the store records ids, and acl_from_text reads a number where no such name exists)."""
    if len(blob) < _ACL_HEAD.size or _ACL_HEAD.unpack_from(blob)[0] != _ACL_VERSION or \
            (len(blob) - _ACL_HEAD.size) % _ACL_ENTRY.size:
        raise ArchiveError("an ACL xattr that is not in the kernel's version 2 form",
                           "check the source's ACLs with getfacl; the file is archived without them otherwise")
    out = []
    for tag, perm, qualifier in _ACL_ENTRY.iter_unpack(blob[_ACL_HEAD.size:]):
        if tag not in _TAG_TEXT:
            raise ArchiveError(f"an ACL entry with the unknown tag {tag:#x}", "check the source's ACLs with getfacl")
        who = str(qualifier) if tag in (_USER, _GROUP) else ""
        out.append(f"{_TAG_TEXT[tag]}:{who}:" + "".join(c if perm & b else "-" for c, b in (("r", 4), ("w", 2),
                                                                                               ("x", 1))))
    return ",".join(out)


def acl_xattr(text: str) -> bytes:
    """The system.posix_acl_* value for ACL text as GNU tar writes it (names or numeric ids; commas or newlines
    between entries; `#` comments ignored)."""
    entries = []
    for item in text.replace("\n", ",").split(","):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise ArchiveError(f"ACL entry {item!r} is not tag:qualifier:permissions", "check the archive's ACL text")
        tag, who, perms = parts
        tag = {"u": "user", "g": "group", "m": "mask", "o": "other"}.get(tag, tag)
        if tag == "user":
            code, qualifier = (_USER, _uid(who)) if who else (_USER_OBJ, 0xFFFFFFFF)
        elif tag == "group":
            code, qualifier = (_GROUP, _gid(who)) if who else (_GROUP_OBJ, 0xFFFFFFFF)
        elif tag in ("mask", "other"):
            code, qualifier = (_MASK if tag == "mask" else _OTHER), 0xFFFFFFFF
        else:
            raise ArchiveError(f"ACL entry {item!r} has an unknown tag", "check the archive's ACL text")
        perm = sum(b for c, b in (("r", 4), ("w", 2), ("x", 1)) if c in perms)
        entries.append((code, qualifier, perm))
    entries.sort()  # the kernel wants them ordered by tag, then id
    return _ACL_HEAD.pack(_ACL_VERSION) + b"".join(_ACL_ENTRY.pack(c, p, q) for c, q, p in entries)


def _uid(who: str) -> int:
    try:
        return int(who)
    except ValueError:
        try:
            return pwd.getpwnam(who).pw_uid
        except KeyError:
            raise ArchiveError(f"ACL names the unknown user {who!r}", "create the user, then restore again") from None


def _gid(who: str) -> int:
    try:
        return int(who)
    except ValueError:
        try:
            return grp.getgrnam(who).gr_gid
        except KeyError:
            raise ArchiveError(f"ACL names the unknown group {who!r}", "create the group, then restore again"
                               ) from None


def xattr_records(xattrs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    records = {}
    for name, value in xattrs:
        if name == ACL_ACCESS:
            records["SCHILY.acl.access"] = acl_text(value)
        elif name == ACL_DEFAULT:
            records["SCHILY.acl.default"] = acl_text(value)
        else:
            records["SCHILY.xattr." + text(name)] = text(value)
    return records


# ---- headers -----------------------------------------------------------------------------------------------------
def sparse_name(name: bytes) -> bytes:
    """The ustar name of a sparse member, as GNU tar makes it (DIR/GNUSparseFile.0/BASE); the real name travels
    in GNU.sparse.name. Kept ASCII and short so no pax `path` record competes with it."""
    head, _, base = name.rpartition(b"/")
    fake = (head + b"/" if head else b"") + b"GNUSparseFile.0/" + base
    if fake.isascii() and len(fake) < 100:
        return fake
    return b"GNUSparseFile.0/" + blake3.blake3(name).hexdigest()[:32].encode()


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_CHECKSUM_AT = 148
_PREFIX_AT = 345
_MAX_ID, _MAX_SIZE = 8 ** 7, 8 ** 11  # what 7 and 11 octal digits hold


def pax_records(records: dict[str, str]) -> bytes:
    """pax extended header records, `LEN KEYWORD=VALUE\n`. Values that are not UTF-8 (surrogate escapes) go out
    as their raw bytes, without hdrcharset=BINARY: that is how GNU tar writes them, and GNU tar 1.34 warns about a
    hdrcharset record it does not know."""
    out = []
    for keyword, value in records.items():
        body = _keyword(keyword) + value.encode(ENCODING, ERRORS) + b"\n"
        size = len(body)
        digits = len(str(size + 1))  # the length counts its own digits, which may carry it to one digit more
        length = size + digits
        if len(str(length)) != digits:
            length += 1
        out.append(b"%d%s" % (length, body))
    return b"".join(out)


@functools.lru_cache(maxsize=1024)
def _keyword(keyword: str) -> bytes:
    return b" %s=" % keyword.encode(ENCODING, ERRORS)


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, kind: bytes, link: bytes,
           uname: bytes, gname: bytes, devmajor: int, devminor: int) -> bytes:
    """One ustar header block; the numbers must fit their fields (struct pads the digits with NULs)."""
    block = _USTAR.pack(name, b"%07o" % mode, b"%07o" % uid, b"%07o" % gid, b"%011o" % size, b"%011o" % mtime,
                        b"        ", kind, link, b"ustar\x0000", uname, gname, b"%07o" % devmajor,
                        b"%07o" % devminor, b"")
    # The checksum sums every byte (the empty prefix field and the padding after it are NULs). adler32's low half
    # is that sum plus one, modulo 65521, which an ASCII header (at most 345 * 127) never reaches: sum() over the
    # bytes was a third of the header's cost, on the archive's thread.
    head = block[:_PREFIX_AT]
    checksum = (zlib.adler32(head) & 0xFFFF) - 1 if head.isascii() else sum(head)
    return b"%s%06o\0 %s" % (block[:_CHECKSUM_AT], checksum, block[_CHECKSUM_AT + 8:])


@functools.lru_cache(maxsize=4096)
def _pax_header_block(size: int) -> bytes:
    return _ustar(b"././@PaxHeader", 0o644, 0, 0, size, 0, tarfile.XHDTYPE, b"", b"", b"", 0, 0)


def _ascii_cut(raw: bytes, limit: int) -> bytes:
    """What a ustar field shows of a value a pax record carries in full."""
    return raw.decode("ascii", "replace").encode("ascii", "replace")[:limit]


def tar_header(info: tarfile.TarInfo, name: bytes, size: int, records: dict[str, str]) -> bytes:
    """The pax extended header (when there are records) and the ustar header of one member, written directly:
    tarfile's own encoder costs ~100 us a member, a third of a tree of small files' archiving time. `size` is
    what the data section holds; values a ustar field cannot hold go in pax records (which readers prefer)."""
    copied = False
    if info.type == tarfile.DIRTYPE and not name.endswith(b"/"):
        name += b"/"
    link = info.linkname.encode(ENCODING, ERRORS)
    uname, gname = info.uname.encode(ENCODING, ERRORS), info.gname.encode(ENCODING, ERRORS)
    fields = []
    for key, value, limit in (("path", name, 100), ("linkpath", link, 100), ("uname", uname, 32),
                              ("gname", gname, 32)):
        if len(value) > limit or not value.isascii():
            if not copied:
                records, copied = dict(records), True
            records.setdefault(key, value.decode(ENCODING, ERRORS))
            value = _ascii_cut(value, limit)
        fields.append(value)
    numbers = []
    for key, value, limit in (("uid", info.uid, _MAX_ID), ("gid", info.gid, _MAX_ID), ("size", size, _MAX_SIZE),
                              ("mtime", int(info.mtime), _MAX_SIZE)):
        if not 0 <= value < limit:
            if not copied:
                records, copied = dict(records), True
            records.setdefault(key, str(value))
            value = 0
        numbers.append(value)
    uid, gid, size, mtime = numbers
    header = _ustar(fields[0], info.mode, uid, gid, size, mtime, info.type, fields[1], fields[2], fields[3],
                    info.devmajor, info.devminor)
    if not records:
        return header
    body = pax_records(records)
    return b"%s%s%s%s" % (_pax_header_block(len(body)), body, bytes(-len(body) % BLOCK), header)



def _record(key: bytes, value: bytes) -> bytes:
    """One pax record, `key` as b" KEYWORD=" (the length as `pax_records` counts it)."""
    size = len(key) + len(value) + 1
    digits = len(str(size + 1))
    length = size + digits
    if len(str(length)) != digits:
        length += 1
    return b"%d%s%s\n" % (length, key, value)


def _time(ns: int) -> bytes:
    return b"%d.%09d" % divmod(ns, 1_000_000_000) if ns >= 0 else pax_time(ns).encode()


_TEN_DIGITS, _ELEVEN_DIGITS = 10 ** 18, 10 ** 19  # times in ns whose seconds have ten digits
_TIMES = b"30 mtime=%d.%09d\n30 atime=%d.%09d\n30 ctime=%d.%09d\n"


def plain_header(name: bytes, kind: bytes, mode: int, uid: int, gid: int, uname: bytes, gname: bytes, size: int,
                 mtime_ns: int, atime_ns: int, ctime_ns: int, link: bytes, devmajor: int, devminor: int
                 ) -> bytes | None:
    """`tar_header`'s very bytes for a member whose pax records are its three times and the names a ustar field
    cannot hold (a directory's `name` ends with "/"); None when a number needs a record too (the caller takes
    `tar_header`). Straight from the values, no TarInfo or record dict: a set of 100,000 small files spent most of
    its archive thread's time building those."""
    mtime = mtime_ns // 1_000_000_000
    if not (0 <= uid < _MAX_ID and 0 <= gid < _MAX_ID and 0 <= size < _MAX_SIZE and 0 <= mtime < _MAX_SIZE):
        return None
    if _TEN_DIGITS <= mtime_ns < _ELEVEN_DIGITS and _TEN_DIGITS <= atime_ns < _ELEVEN_DIGITS and \
            _TEN_DIGITS <= ctime_ns < _ELEVEN_DIGITS:  # 2001 to 2286: each record is 30 bytes
        body = _TIMES % (*divmod(mtime_ns, 1_000_000_000), *divmod(atime_ns, 1_000_000_000),
                         *divmod(ctime_ns, 1_000_000_000))
    else:
        body = b"%s%s%s" % (_record(b" mtime=", _time(mtime_ns)), _record(b" atime=", _time(atime_ns)),
                            _record(b" ctime=", _time(ctime_ns)))
    if not (len(name) <= 100 and len(link) <= 100 and len(uname) <= 32 and len(gname) <= 32
            and (name + link + uname + gname).isascii()):
        shown = []
        for key, value, limit in ((b" path=", name, 100), (b" linkpath=", link, 100), (b" uname=", uname, 32),
                                  (b" gname=", gname, 32)):
            if len(value) > limit or not value.isascii():
                body += _record(key, value)
                value = _ascii_cut(value, limit)
            shown.append(value)
        name, link, uname, gname = shown
    header = _ustar(name, mode, uid, gid, size, mtime, kind, link, uname, gname, devmajor, devminor)
    return b"%s%s%s%s" % (_pax_header_block(len(body)), body, bytes(-len(body) % BLOCK), header)
