"""Go's string conversions that Caddyfile code relies on, so texts match Caddy's.

`go_sprintf` covers the verbs Caddy's Caddyfile code uses in its messages
(%s %v %d %q %%), printing lists as ``[a b]``, booleans as ``true``, None as
``<nil>``. The number parsers follow strconv's syntax, not Python's (which
accepts spaces, underscores and non-ASCII digits).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_VERB = re.compile(r"%([%svdqT])")
_ATOI = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)


def go_value(value: object) -> str:
    """A value as Go's %v prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_value(k)}:{go_value(v)}" for k, v in value.items()) + "]"
    return str(value)


def go_float(value: float) -> str:
    """A float64 as Go's %v prints it (shortest digits; exponent form below 1e-4 or from 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    # repr is the shortest round-trip form, like Go's; normalize drops trailing zeros
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_quote(text: str) -> str:
    """strconv.Quote: double quotes, Go escapes, printable runes kept."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_sprintf(fmt: str, *args: object) -> str:
    """fmt.Sprintf for the verbs %s %v %d %q %T %%."""
    values = iter(args)

    def verb(m: re.Match[str]) -> str:
        kind = m.group(1)
        if kind == "%":
            return "%"
        value = next(values, None)
        if kind == "q":
            return go_quote(str(value))
        if kind == "T":
            return type(value).__name__
        return go_value(value)

    return _VERB.sub(verb, fmt)


def go_atoi(text: str) -> int | None:
    """strconv.Atoi: optional sign and ASCII digits within int64; None otherwise."""
    if not _ATOI.fullmatch(text):
        return None
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return None
    return value


def go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64); None on a syntax error or an overflow.

    Underscore digit separators (Go allows them only after a base prefix) are
    not accepted.
    """
    if not _FLOAT.fullmatch(text):
        return None
    bare = text.lower().lstrip("+-")
    value = float.fromhex(text) if bare.startswith("0x") else float(text)
    if math.isinf(value) and "inf" not in bare:
        return None
    return value


def go_parse_bool(text: str) -> bool | None:
    """strconv.ParseBool; None when the text is not one of Go's spellings."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def go_scalar(text: str) -> int | float | bool | str:
    """Caddy's Dispenser.ScalarVal for an unquoted token: Atoi, ParseFloat, ParseBool, text."""
    number = go_atoi(text)
    if number is not None:
        return number
    real = go_parse_float(text)
    if real is not None:
        return real
    flag = go_parse_bool(text)
    if flag is not None:
        return flag
    return text
