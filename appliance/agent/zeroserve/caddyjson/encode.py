"""Byte-exact Go encoding/json output (as `caddy adapt` prints it).

Compact form is `json.Marshal`: HTML-escaped strings (`<`, `>`, `&`, U+2028,
U+2029), `\\b` `\\f` `\\n` `\\r` `\\t` short escapes, other control bytes as
`\\u00xx`, invalid text as U+FFFD, floats in Go's shortest form. Pretty form
is `json.Indent(compact, "", "\\t")`, which leaves empty `{}` and `[]` alone.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from zeroserve.caddyjson.model import GoMap

# encode_basestring (C in CPython) escapes the way Go does for all but these: Go also
# escapes the HTML characters and U+2028/U+2029, and writes invalid text (a lone surrogate
# stands for a byte that was not UTF-8) as U+FFFD. They can only occur inside strings, so
# one pass over the finished text fixes them up instead of a Python loop over every string.
_GO_ONLY = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_escape(match: re.Match[str]) -> str:
    return _GO_ESCAPES.get(match.group(), "\\ufffd")


def _float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        text = repr(f)
        mant, _, exp = text.partition("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        if len(digits) == 1 and sign == "-":
            return f"{mant}e-{digits}"
        return f"{mant}e{sign}{digits.zfill(2)}"
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _compact(value: Any, out: list[str]) -> None:
    # the common kinds first: this runs once per value of the config
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, dict):
        items = sorted(value.items()) if isinstance(value, GoMap) else value.items()
        sep = "{"
        for k, v in items:
            out.append(sep)
            out.append(encode_basestring(k))
            out.append(":")
            _compact(v, out)
            sep = ","
        out.append("}" if sep == "," else "{}")
    elif isinstance(value, list | tuple):
        sep = "["
        for v in value:
            out.append(sep)
            _compact(v, out)
            sep = ","
        out.append("]" if sep == "," else "[]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    else:
        raise TypeError(f"json: unsupported type: {type(value).__name__}")


def _indent(compact: str) -> str:
    """Go's json.Indent with prefix "" and indent "\\t" over valid compact JSON."""
    out: list[str] = []
    depth = 0
    in_str = False
    escaped = False
    need_newline = False  # just opened a container: newline only if it is non-empty
    for ch in compact:
        if in_str:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
            continue
        if need_newline and ch not in "]}":
            out.append("\n" + "\t" * depth)
        need_newline = False
        if ch == '"':
            in_str = True
            out.append(ch)
        elif ch in "{[":
            out.append(ch)
            depth += 1
            need_newline = True
        elif ch in "]}":
            depth -= 1
            if out[-1] not in "{[":
                out.append("\n" + "\t" * depth)
            out.append(ch)
        elif ch == ",":
            out.append(",\n" + "\t" * depth)
        elif ch == ":":
            out.append(": ")
        else:
            out.append(ch)
    return "".join(out)


def encode(config: Any, pretty: bool = False) -> bytes:
    """Encode `config` as Go would, without a trailing newline."""
    out: list[str] = []
    _compact(config, out)
    text = _GO_ONLY.sub(_go_escape, "".join(out))
    if pretty:
        text = _indent(text)
    return text.encode("utf-8")
