"""io_uring probe without the engine: io_uring_setup + IORING_REGISTER_PROBE via ctypes.

Used when `zeroserve._engine` is not importable (not built yet, or a broken
build), so `zeroserve doctor` can still say whether the kernel would run it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from functools import cache

_SYS_IO_URING_SETUP = 425
_SYS_IO_URING_REGISTER = 427
_IORING_REGISTER_PROBE = 8
_IO_URING_OP_SUPPORTED = 1
_PROBE_OPS = 256

# enum io_uring_op (include/uapi/linux/io_uring.h), the ones the engine's design uses.
OPCODES = {
    "IORING_OP_TIMEOUT": 11,
    "IORING_OP_ACCEPT": 13,
    "IORING_OP_ASYNC_CANCEL": 14,
    "IORING_OP_CLOSE": 19,
    "IORING_OP_READ": 22,
    "IORING_OP_WRITE": 23,
    "IORING_OP_SEND": 26,
    "IORING_OP_RECV": 27,
    "IORING_OP_SPLICE": 30,
    "IORING_OP_PROVIDE_BUFFERS": 31,
}


class _Params(ctypes.Structure):
    # struct io_uring_params is 120 bytes; the kernel fills the offsets, we need none.
    _fields_ = [("raw", ctypes.c_uint8 * 120)]


class _ProbeOp(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_uint8),
        ("resv", ctypes.c_uint8),
        ("flags", ctypes.c_uint16),
        ("resv2", ctypes.c_uint32),
    ]


class _Probe(ctypes.Structure):
    _fields_ = [
        ("last_op", ctypes.c_uint8),
        ("ops_len", ctypes.c_uint8),
        ("resv", ctypes.c_uint16),
        ("resv2", ctypes.c_uint32 * 3),
        ("ops", _ProbeOp * _PROBE_OPS),
    ]


@dataclass(frozen=True)
class UringReport:
    """Same shape as `zeroserve._engine.probe()`'s dict."""

    setup: bool
    opcodes: dict[str, bool]
    error: str | None


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def probe(opcodes: dict[str, int] | None = None, entries: int = 2) -> UringReport:
    """Set up a throwaway ring of `entries` and ask which opcodes the kernel supports."""
    wanted = OPCODES if opcodes is None else opcodes
    libc = _libc()
    params = _Params()
    fd = libc.syscall(_SYS_IO_URING_SETUP, ctypes.c_uint(entries), ctypes.byref(params))
    if fd < 0:
        code = ctypes.get_errno()
        return UringReport(
            False, dict.fromkeys(wanted, False), f"io_uring_setup: {os.strerror(code)}"
        )
    try:
        table = _Probe()
        ret = libc.syscall(
            _SYS_IO_URING_REGISTER,
            ctypes.c_int(fd),
            ctypes.c_uint(_IORING_REGISTER_PROBE),
            ctypes.byref(table),
            ctypes.c_uint(_PROBE_OPS),
        )
        if ret < 0:
            code = ctypes.get_errno()
            return UringReport(
                True, dict.fromkeys(wanted, False), f"IORING_REGISTER_PROBE: {os.strerror(code)}"
            )
        supported = {
            name: code < table.ops_len and bool(table.ops[code].flags & _IO_URING_OP_SUPPORTED)
            for name, code in wanted.items()
        }
        return UringReport(True, supported, None)
    finally:
        os.close(fd)
