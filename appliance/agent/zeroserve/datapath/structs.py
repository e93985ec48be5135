"""ctypes mirror of appliance/bpf/include/structs.h and the integer defines of consts.h.

Read from the headers at import, so the C and the Python layout cannot drift.
Only the subset those headers promise to stay in is understood: `struct name {
__uN field; __uN field[len]; };` and `#define NAME <int>`; anything else in a
struct body is an error rather than a silent mismatch.
"""

from __future__ import annotations

import ctypes
import re

from zeroserve.datapath.render import BPF_DIR

_TYPES = {
    "__u8": ctypes.c_uint8,
    "__u16": ctypes.c_uint16,
    "__u32": ctypes.c_uint32,
    "__u64": ctypes.c_uint64,
}
_STRUCT = re.compile(r"struct\s+(\w+)\s*\{([^}]*)\};")
_FIELD = re.compile(r"^(__u(?:8|16|32|64))\s+(\w+)(?:\[(\d+)\])?;$")
_DEFINE = re.compile(r"^#define\s+(ZS_\w+)\s+(\d+)\b", re.MULTILINE)
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def parse_structs(text: str) -> dict[str, type[ctypes.Structure]]:
    structs: dict[str, type[ctypes.Structure]] = {}
    for name, body in _STRUCT.findall(_COMMENT.sub("", text)):
        fields: list[tuple[str, type]] = []
        for decl in filter(None, (line.strip() for line in body.splitlines())):
            match = _FIELD.match(decl)
            if not match:
                raise ValueError(f"structs.h: struct {name}: cannot mirror {decl!r}")
            ctype, field, length = match.groups()
            base = _TYPES[ctype]
            fields.append((field, base * int(length) if length else base))
        structs[name] = type(name, (ctypes.Structure,), {"_fields_": fields})
    return structs


def parse_defines(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in _DEFINE.findall(text)}


STRUCTS = parse_structs((BPF_DIR / "include" / "structs.h").read_text())
CONSTS = parse_defines((BPF_DIR / "include" / "consts.h").read_text())
