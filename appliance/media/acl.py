"""POSIX ACLs between GNU tar's text form (pax SCHILY.acl.access / SCHILY.acl.default) and the binary value of the
system.posix_acl_access / system.posix_acl_default xattrs that the kernel takes (and the store's scan records).

The text is what `getfacl` prints without comments, one entry a line (a comma also separates entries): `user::rw-`,
`user:bin:r-x`, `group::r--`, `mask::rwx`, `other::r--`; star adds the numeric id as a fourth field. Names are
resolved on this machine; a name unknown here falls back to that id, or to the name itself when it is a number.
The binary value (linux/posix_acl_xattr.h): a little-endian u32 version (2), then one (u16 tag, u16 permissions,
u32 id) entry each, sorted by tag and id.
"""

from __future__ import annotations

import grp
import pwd
import struct

ACCESS, DEFAULT = "system.posix_acl_access", "system.posix_acl_default"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_TAGS = {"user": _USER, "u": _USER, "group": _GROUP, "g": _GROUP, "mask": _MASK, "m": _MASK, "other": _OTHER,
         "o": _OTHER}
_NAMES = {_USER_OBJ: "user", _USER: "user", _GROUP_OBJ: "group", _GROUP: "group", _MASK: "mask", _OTHER: "other"}
_ENTRY = struct.Struct("<HHI")


class AclError(ValueError):
    """An ACL text that cannot be turned into an ACL here; the message names the entry."""


def xattr_from_text(text: str) -> bytes:
    """The binary xattr value of an ACL given as text."""
    entries: dict[tuple[int, int], int] = {}
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        fields = entry.split(":")
        if len(fields) not in (3, 4) or fields[0] not in _TAGS:
            raise AclError(f"ACL entry {entry!r} is not tag:qualifier:permissions")
        tag, qualifier, perms = _TAGS[fields[0]], fields[1], _perms(fields[2], entry)
        if tag in (_USER, _GROUP) and qualifier:
            ident = _ident(tag, qualifier, fields[3] if len(fields) == 4 else None, entry)
        elif tag in (_USER, _GROUP):
            tag, ident = (_USER_OBJ if tag == _USER else _GROUP_OBJ), _NO_ID
        else:
            ident = _NO_ID
        entries[(tag, ident)] = perms
    tags = {tag for tag, _ in entries}
    missing = {_USER_OBJ, _GROUP_OBJ, _OTHER} - tags
    if missing:
        raise AclError(f"ACL {text.strip()!r} lacks its {', '.join(_NAMES[t] + '::' for t in sorted(missing))} entry")
    if tags & {_USER, _GROUP} and _MASK not in tags:  # as setfacl does: the union of the group class
        entries[(_MASK, _NO_ID)] = 0
        for (tag, _), perms in list(entries.items()):
            if tag in (_USER, _GROUP, _GROUP_OBJ):
                entries[(_MASK, _NO_ID)] |= perms
    return struct.pack("<I", _VERSION) + b"".join(_ENTRY.pack(tag, perms, ident)
                                                  for (tag, ident), perms in sorted(entries.items()))


def is_minimal(value: bytes) -> bool:
    """An ACL of the three entries the mode holds, nothing more (the kernel keeps no xattr for it)."""
    return len(value) == 4 + 3 * _ENTRY.size


def text_from_xattr(value: bytes) -> str:
    """GNU tar's text form of a binary ACL xattr value (names where this machine knows them, else numbers)."""
    if len(value) < 4 or (len(value) - 4) % _ENTRY.size or struct.unpack_from("<I", value)[0] != _VERSION:
        raise AclError(f"ACL xattr value of {len(value)} bytes is not a version {_VERSION} POSIX ACL")
    lines = []
    for tag, perms, ident in _ENTRY.iter_unpack(value[4:]):
        if tag not in _NAMES:
            raise AclError(f"ACL xattr holds an unknown tag {tag:#x}")
        qualifier = _name(tag, ident) if tag in (_USER, _GROUP) else ""
        rwx = "".join(c if perms & bit else "-" for c, bit in (("r", 4), ("w", 2), ("x", 1)))
        lines.append(f"{_NAMES[tag]}:{qualifier}:{rwx}\n")
    return "".join(lines)


def _perms(text: str, entry: str) -> int:
    bits = 0
    for c in text:
        if c == "-":
            continue
        bit = {"r": 4, "w": 2, "x": 1}.get(c)
        if bit is None:
            raise AclError(f"ACL entry {entry!r} has permissions other than r, w, x and -")
        bits |= bit
    return bits


def _ident(tag: int, name: str, number: str | None, entry: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid if tag == _USER else grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    for candidate in (number, name):
        if candidate is not None and candidate.isdigit():
            return int(candidate)
    kind = "user" if tag == _USER else "group"
    raise AclError(f"ACL entry {entry!r} names {kind} {name!r}, unknown on this machine: create the {kind}, then "
                   f"restore again")


def _name(tag: int, ident: int) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if tag == _USER else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)
