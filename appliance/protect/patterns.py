"""Include/exclude patterns of a source (fnmatch, gitignore-like), matched against paths relative to its root.

A pattern without "/" matches a name at any depth ("*.tmp", "cache"); one with "/" matches the whole relative
path ("build/*.o"), a leading "/" only anchoring it to the root; "**" crosses directories ("logs/**/old").
"""

from __future__ import annotations

import fnmatch
import os
import re


def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern | None, re.Pattern | None]:
    names, paths = [], []
    for pattern in patterns:
        p = pattern.rstrip("/")
        if "/" in p:
            paths.append(fnmatch.translate(p.lstrip("/")))
        else:
            names.append(fnmatch.translate(p))
    join = lambda parts: re.compile("|".join(f"(?:{x})" for x in parts)) if parts else None  # noqa: E731
    return join(names), join(paths)


class Matcher:
    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self.active = bool(include or exclude)
        self._include = _compile(include) if include else None
        self._exclude = _compile(exclude)

    @staticmethod
    def _hit(compiled: tuple[re.Pattern | None, re.Pattern | None], rel: bytes, name: bytes) -> bool:
        names, paths = compiled
        return bool((names and names.match(os.fsdecode(name))) or (paths and paths.match(os.fsdecode(rel))))

    def skip_dir(self, rel: bytes, name: bytes) -> bool:
        return self.active and self._hit(self._exclude, rel, name)

    def skip_file(self, rel: bytes, name: bytes) -> bool:
        if not self.active:
            return False
        if self._hit(self._exclude, rel, name):
            return True
        return self._include is not None and not self._hit(self._include, rel, name)
