"""nbgrader's cell markers, parsed in one place: solution regions and hidden-test regions.

``### BEGIN SOLUTION`` ... ``### END SOLUTION`` and ``### BEGIN HIDDEN TESTS`` ...
``### END HIDDEN TESTS`` delimit what a release removes. The self-study edition,
the leak test and the wrong-answer suite all need to find them the same way.
"""

from __future__ import annotations

import re

SOLUTION, HIDDEN = "SOLUTION", "HIDDEN TESTS"
MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def regions(source: str) -> list[tuple[str, int, int]]:
    """``(kind, first line, last line)`` of every region's content (0-based, end inclusive)."""
    found, open_kind, start = [], None, 0
    for i, line in enumerate(source.splitlines()):
        m = MARKER.match(line)
        if not m:
            continue
        edge, kind = m.groups()
        if edge == "BEGIN":
            if open_kind:
                raise ValueError(f"### BEGIN {kind} inside an open {open_kind} region (line {i + 1})")
            open_kind, start = kind, i + 1
        else:
            if open_kind != kind:
                raise ValueError(f"### END {kind} without its BEGIN (line {i + 1})")
            found.append((kind, start, i - 1))
            open_kind = None
    if open_kind:
        raise ValueError(f"### BEGIN {open_kind} is never closed")
    return found


def split(source: str) -> tuple[list[str], list[str]]:
    """(lines inside any region, lines outside every region), without the marker lines."""
    lines = source.splitlines()
    inside = {i for _, a, b in regions(source) for i in range(a, b + 1)}
    secret = [line for i, line in enumerate(lines) if i in inside]
    public = [line for i, line in enumerate(lines) if i not in inside and not MARKER.match(line)]
    return secret, public


def strip(source: str, kind: str) -> str:
    """``source`` without the marker lines of ``kind``; the region's content stays."""
    return "".join(line for line in source.splitlines(keepends=True)
                   if not (MARKER.match(line) and MARKER.match(line).group(2) == kind))


def replace_in(source: str, kind: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` that lies inside a ``kind`` region with ``new``."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans = [(offsets[a], offsets[b + 1]) for k, a, b in regions(source) if k == kind]
    hits = [i for i in _find_all(source, old) if any(s <= i and i + len(old) <= e for s, e in spans)]
    if len(hits) != 1:
        raise ValueError(f"expected {old!r} once inside a {kind} region; found it {len(hits)} times")
    i = hits[0]
    return source[:i] + new + source[i + len(old):]


def _find_all(text: str, sub: str):
    i = text.find(sub)
    while i != -1:
        yield i
        i = text.find(sub, i + 1)
