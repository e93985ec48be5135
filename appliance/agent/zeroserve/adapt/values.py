"""Go's parsers for the scalar values Caddyfile directives take, with Go's error texts.

Caddy's unmarshalers lean on a handful of Go library parsers: `strconv.Atoi` and
`ParseFloat`, `time.ParseDuration` behind `caddy.ParseDuration` (which adds a `d`
unit), go-humanize's `ParseBytes`, and net/textproto's header-key canonicalisation.
Their error messages end up verbatim in Caddy's adapt errors, so each parser here
raises `ValueError` whose text is exactly Go's `err.Error()`; callers wrap it the
way the Go code wraps `err` (usually `d.Errf("bad ... '%s': %v", val, err)`).
"""

from __future__ import annotations

import re
from decimal import Decimal

from zeroserve.caddyfile.gofmt import go_atoi, go_parse_float, go_quote

INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1

# the CIDRs Caddy's `private_ranges` shorthand expands to (internal.PrivateRangesCIDR)
PRIVATE_RANGES = [
    "192.168.0.0/16",
    "172.16.0.0/12",
    "10.0.0.0/8",
    "127.0.0.1/8",
    "fd00::/8",
    "::1",
]


def atoi(s: str) -> int:
    """`strconv.Atoi` on a 64-bit platform."""
    value = go_atoi(s)
    if value is None:
        reason = "value out of range" if _ATOI_SYNTAX.fullmatch(s) else "invalid syntax"
        raise ValueError(f"strconv.Atoi: parsing {go_quote(s)}: {reason}")
    return value


_ATOI_SYNTAX = re.compile(r"[+-]?[0-9]+")


def parse_float(s: str) -> float:
    """`strconv.ParseFloat(s, 64)`."""
    value = go_parse_float(s)
    if value is None:
        reason = "invalid syntax"
        try:
            if float(s) in (float("inf"), float("-inf")):
                reason = "value out of range"
        except ValueError:
            pass
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(s)}: {reason}")
    return value


def format_float(x: float) -> str:
    """`strconv.FormatFloat(x, 'f', -1, 64)`: shortest round-tripping digits, no exponent."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def go_parse_duration(orig: str) -> int:
    """`time.ParseDuration`, in nanoseconds."""
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    s = orig
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = 0
        v = 0
        while i < len(s) and "0" <= s[i] <= "9":
            v = v * 10 + ord(s[i]) - 48
            if v > 1 << 63:
                raise invalid
            i += 1
        pre = i > 0
        s = s[i:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            i = 0
            overflow = False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:
                    y = frac * 10 + ord(s[i]) - 48
                    if frac > INT64_MAX // 10 or y > 1 << 63:
                        overflow = True
                    else:
                        frac = y
                        scale *= 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}"
            )
        if v > (1 << 63) // unit:
            raise invalid
        v *= unit
        if frac > 0:
            v += int(float(frac) * (float(unit) / scale))
            if v > 1 << 63:
                raise invalid
        total += v
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > INT64_MAX:
        raise invalid
    return total


def parse_duration(text: str) -> int:
    """`caddy.ParseDuration`: Go durations plus a `d` (24h) unit, in nanoseconds."""
    if len(text.encode()) > 1024:
        raise ValueError("parsing duration: input string too long")
    # Caddy rewrites each "<n>d" into hours, scanning bytes
    s = text.encode()
    in_number = False
    num_start = 0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == ord("d"):
            days = parse_float(s[num_start:i].decode(errors="surrogateescape"))
            hours = format_float(days * 24.0).encode()
            s = s[:num_start] + hours + b"h" + s[i + 1 :]
            continue
        if not in_number:
            num_start = i
        in_number = chr(ch) in "0123456789.-+"
        i += 1
    return go_parse_duration(s.decode(errors="surrogateescape"))


_BYTE_SIZES = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1 << 10,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1 << 20,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1 << 30,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1 << 40,
    "tib": 1 << 40,
    "p": 1000**5,
    "pb": 1000**5,
    "pi": 1 << 50,
    "pib": 1 << 50,
    "e": 1000**6,
    "eb": 1000**6,
    "ei": 1 << 60,
    "eib": 1 << 60,
}


def parse_bytes(s: str) -> int:
    """go-humanize's `ParseBytes`: "1.5MB", "10 KiB", "1,000" ... → bytes."""
    end = 0
    while end < len(s) and (s[end].isdigit() or s[end] in ".,"):
        end += 1
    number = s[:end].replace(",", "")
    value = parse_float(number)
    extra = s[end:].strip().lower()
    if extra not in _BYTE_SIZES:
        raise ValueError(f"unhandled size name: {extra}")
    value *= _BYTE_SIZES[extra]
    if value >= float(_UINT64_MAX):
        raise ValueError(f"too large: {s}")
    return int(value)


def int64(value: int) -> int:
    """A Go `int64(uint64)` conversion: values of 2**63 and above wrap to negative."""
    return value - (1 << 64) if value >= 1 << 63 else value


def canonical_header_key(key: str) -> str:
    """net/textproto's `CanonicalMIMEHeaderKey` ("x-foo-bar" → "X-Foo-Bar")."""
    if not key:
        return key
    for ch in key:
        # a key that is not a valid token is returned unchanged
        if ch == " " or not _is_token_char(ch):
            return key
    out = []
    upper = True
    for ch in key:
        if upper and "a" <= ch <= "z":
            ch = ch.upper()
        elif not upper and "A" <= ch <= "Z":
            ch = ch.lower()
        out.append(ch)
        upper = ch == "-"
    return "".join(out)


def _is_token_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "!#$%&'*+-.^_`|~")


def weak_string(value: str) -> bool | int | str:
    """How `caddyhttp.WeakString` encodes: true/false, an int when it parses as one, else str."""
    if value == "true":
        return True
    if value == "false":
        return False
    try:
        return atoi(value)
    except ValueError:
        return value


def go_duration_string(ns: int) -> str:
    """`time.Duration.String()`: "0s", "1.5µs", "250ms", "2m0s", "1h0m0.5s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)

    def frac(value: int, prec: int) -> tuple[str, int]:
        digits = str(value % 10**prec).rjust(prec, "0").rstrip("0")
        return ("." + digits if digits else ""), value // 10**prec

    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        tail, whole = frac(u, 3) if u < 1_000_000 else frac(u, 6)
        unit = "µs" if u < 1_000_000 else "ms"
        return f"{sign}{whole}{tail}{unit}"
    tail, secs = frac(u, 9)
    out = f"{secs % 60}{tail}s"
    minutes = secs // 60
    if minutes:
        out = f"{minutes % 60}m" + out
        if minutes // 60:
            out = f"{minutes // 60}h" + out
    return sign + out


def omit_empty(fields: dict) -> dict:
    """Go's `omitempty` on value fields: zero values ("", 0, False, None, empty
    slices and maps) are left out, and the rest keep the struct's field order."""
    return {key: value for key, value in fields.items() if value}
