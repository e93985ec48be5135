"""Go's path and glob semantics for `import` (path/filepath on Linux).

Import paths end up in error messages and in token file names, so they are
cleaned, joined and globbed the way Go does it: `Clean` collapses ``//`` and
``..`` lexically, `Glob` sorts matches, lets ``*`` match dotfiles, treats
``\\`` as an escape and rejects a malformed pattern with "syntax error in
pattern".
"""

from __future__ import annotations

import errno
import os
import re


def go_clean(path: str) -> str:
    """filepath.Clean."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def go_join(*elements: str) -> str:
    """filepath.Join: non-empty elements joined with '/', then cleaned."""
    joined = "/".join(e for e in elements if e)
    return go_clean(joined) if joined else ""


def is_abs(path: str) -> bool:
    return path.startswith("/")


def fast_abs(path: str) -> str:
    """caddy.FastAbs (filepath.Abs): cleaned, relative to the working directory."""
    if is_abs(path):
        return go_clean(path)
    return go_join(os.getcwd(), path)


def go_error_text(op: str, path: str, exc: OSError) -> str:
    """An *os.PathError text: ``open /x: no such file or directory``."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.ENOENT:
        reason = "no such file or directory"
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def _has_meta(path: str) -> bool:
    return any(ch in path for ch in "*?[\\")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """filepath.Match's syntax as a regex; ValueError('syntax error in pattern') if malformed."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                raise ValueError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i, cls = _char_class(pattern, i + 1)
            out.append(cls)
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _char_class(pattern: str, i: int) -> tuple[int, str]:
    """Parse a Go character class starting after '['; returns (index after ']', regex)."""
    n = len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    while True:
        if i < n and pattern[i] == "]" and ranges:
            return i + 1, ("[^" if negated else "[") + "".join(ranges) + "]"
        i, lo = _class_char(pattern, i)
        hi = lo
        if i < n and pattern[i] == "-":
            i, hi = _class_char(pattern, i + 1)
            if hi < lo:
                raise ValueError("syntax error in pattern")
        ranges.append(re.escape(lo) + "-" + re.escape(hi))


def _class_char(pattern: str, i: int) -> tuple[int, str]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise ValueError("syntax error in pattern")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise ValueError("syntax error in pattern")
    return i + 1, pattern[i]


def go_glob(pattern: str) -> list[str]:
    """filepath.Glob: sorted matches; ValueError('syntax error in pattern') if malformed."""
    _pattern_regex(pattern)
    if not _has_meta(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    directory, _, name = pattern.rpartition("/")
    if "/" in pattern:
        directory = directory or "/"
    else:
        directory = "."
    if not _has_meta(directory):
        return _glob_dir(directory, name)
    if directory == pattern:
        raise ValueError("syntax error in pattern")
    matches: list[str] = []
    for parent in go_glob(directory):
        matches.extend(_glob_dir(parent, name))
    return matches


def _glob_dir(directory: str, name_pattern: str) -> list[str]:
    try:
        if not os.path.isdir(directory):
            return []
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    regex = _pattern_regex(name_pattern)
    return [go_join(directory, n) for n in names if regex.match(n)]
