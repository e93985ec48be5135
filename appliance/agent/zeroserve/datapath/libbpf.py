"""The bpf(2) calls the agent makes, through Debian's libbpf1 and ctypes.

The agent never imports bcc (its LLVM stays in the build child); once programs and
maps are pinned, everything it does to them is one of these calls. Each failure
raises BpfError with the call, the object and the kernel's errno text.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import mmap
import os
import struct
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

BPF_ANY = 0
BPF_NOEXIST = 1

# enum bpf_map_type / bpf_prog_type / bpf_attach_type values used here (uapi/linux/bpf.h).
MAP_TYPE_ARRAY = 2
MAP_TYPE_LPM_TRIE = 11
PROG_TYPE_SOCKET_FILTER = 1
PROG_TYPE_SCHED_CLS = 3
PROG_TYPE_XDP = 6
PROG_TYPE_SK_LOOKUP = 30
ATTACH_SK_LOOKUP = 36

# enum bpf_map_type values whose values are per CPU.
_PERCPU_MAP_TYPES = {5, 6, 10}  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH


class BpfError(OSError):
    """A bpf(2) call failed; str() names the call and the kernel's reason."""

    kernel = ""  # the kernel's own words on a refused netlink request (extack), if any

    def __str__(self) -> str:
        return self.strerror


class _TestRunOpts(ctypes.Structure):
    # struct bpf_test_run_opts, libbpf 1.1 (libbpf checks .sz for compatibility).
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _XdpAttachOpts(ctypes.Structure):
    # struct bpf_xdp_attach_opts, libbpf 1.1.
    _fields_ = [("sz", ctypes.c_size_t), ("old_prog_fd", ctypes.c_int)]


class _ProgInfo(ctypes.Structure):
    # Leading part of struct bpf_prog_info; the kernel fills only what fits.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


class _MapInfo(ctypes.Structure):
    # Leading part of struct bpf_map_info.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    tag: str
    name: str
    xlated_insns: int  # instructions after the verifier's rewrites
    jited_bytes: int  # native code size, 0 without the JIT


@dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


@dataclass(frozen=True)
class TestRun:
    retval: int
    data_out: bytes
    duration_ns: int


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list ap); a
# va_list parameter reaches the callee as a pointer, which vsnprintf takes as it is.
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_KERNEL_SAYS = "Kernel error message: "
log = logging.getLogger("zeroserve.libbpf")
_said = threading.local()  # the kernel's extack text of this thread's last libbpf call


@cache
def _vsnprintf() -> Any:
    fn = ctypes.CDLL(ctypes.util.find_library("c")).vsnprintf
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    return fn


def _on_print(level: int, fmt: bytes, args: int) -> int:
    """libbpf's own messages, which it would write to stderr: at debug level in our log,
    and the kernel's reason for a refused netlink request kept for the error that follows."""
    buf = ctypes.create_string_buffer(1024)
    _vsnprintf()(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").strip()
    log.debug("%s", text)
    if _KERNEL_SAYS in text:
        _said.text = text.split(_KERNEL_SAYS, 1)[1]
    return 0


# Held for the life of the process: libbpf keeps the pointer.
_printer = _PRINT_FN(_on_print)


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.libbpf_set_print.argtypes = [_PRINT_FN]
    lib.libbpf_set_print.restype = ctypes.c_void_p
    lib.libbpf_set_print(_printer)
    i32, u32, ptr = ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p
    signatures: dict[str, list] = {
        "bpf_obj_get": [ctypes.c_char_p],
        "bpf_obj_pin": [i32, ctypes.c_char_p],
        "bpf_map_create": [i32, ctypes.c_char_p, u32, u32, u32, ptr],
        "bpf_map_update_elem": [i32, ptr, ptr, ctypes.c_uint64],
        "bpf_map_lookup_elem": [i32, ptr, ptr],
        "bpf_map_get_next_key": [i32, ptr, ptr],
        "bpf_map_delete_elem": [i32, ptr],
        "bpf_map_update_batch": [i32, ptr, ptr, ctypes.POINTER(u32), ptr],
        "bpf_map_delete_batch": [i32, ptr, ctypes.POINTER(u32), ptr],
        "bpf_map_lookup_batch": [i32, ptr, ptr, ptr, ptr, ctypes.POINTER(u32), ptr],
        "bpf_obj_get_info_by_fd": [i32, ptr, ctypes.POINTER(u32)],
        "bpf_prog_test_run_opts": [i32, ctypes.POINTER(_TestRunOpts)],
        "bpf_link_create": [i32, i32, i32, ptr],
        "bpf_xdp_attach": [i32, i32, u32, ctypes.POINTER(_XdpAttachOpts)],
        "bpf_prog_get_fd_by_id": [u32],
        "bpf_prog_load": [
            i32,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ptr,
        ],
    }
    for fn, argtypes in signatures.items():
        getattr(lib, fn).argtypes = argtypes
    return lib


def _check(ret: int, what: str) -> int:
    # libbpf 1.x returns -errno (and also sets errno).
    said, _said.text = getattr(_said, "text", ""), ""
    if ret < 0:
        code = -ret
        err = BpfError(code, f"{what}: {os.strerror(code)}{f' ({said})' if said else ''}")
        err.kernel = said
        raise err
    return ret


def obj_get(path: Path | str) -> int:
    """Open a pinned program, map or link; the caller owns the fd."""
    return _check(_lib().bpf_obj_get(os.fsencode(path)), f"open pin {path}")


def obj_pin(fd: int, path: Path | str) -> None:
    _check(_lib().bpf_obj_pin(fd, os.fsencode(path)), f"pin {path}")


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int) -> int:
    """Create an unpinned map; the caller owns the fd."""
    return _check(
        _lib().bpf_map_create(map_type, name.encode(), key_size, value_size, max_entries, None),
        f"create map {name} (type {map_type})",
    )


def prog_load(prog_type: int, name: str, insns: bytes) -> int:
    """Load raw instructions (8 bytes each) as a GPL program; the caller owns the fd."""
    return _check(
        _lib().bpf_prog_load(prog_type, name.encode(), b"GPL", insns, len(insns) // 8, None),
        f"load program {name} (type {prog_type})",
    )


def xdp_pass_program() -> int:
    """A loaded XDP program that passes every frame (`r0 = XDP_PASS; exit`).

    A veth takes the frames its peer sends back with XDP_TX only while an XDP program
    runs on it (a NIC needs nothing of the kind): tests and benchmarks put this one
    on the far ends of their veth pairs.
    """
    xdp_pass, mov_r0, exit_ = 2, 0xB7, 0x95
    insns = struct.pack("<BBhi", mov_r0, 0, 0, xdp_pass) + struct.pack("<BBhi", exit_, 0, 0, 0)
    return prog_load(PROG_TYPE_XDP, "zs_pass", insns)


def xdp_attach(ifindex: int, prog_fd: int, flags: int, old_prog_fd: int | None = None) -> None:
    """Put prog_fd (-1: none) on a link of this thread's network namespace as its XDP
    program; with old_prog_fd, only in place of that one (libbpf adds XDP_FLAGS_REPLACE)."""
    opts = _XdpAttachOpts(ctypes.sizeof(_XdpAttachOpts), old_prog_fd or 0)
    _check(
        _lib().bpf_xdp_attach(ifindex, prog_fd, flags, ctypes.byref(opts)),
        f"XDP on ifindex {ifindex}",
    )


def prog_info(fd: int) -> ProgInfo:
    info = _ProgInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(
        _lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
        f"program info of fd {fd}",
    )
    return ProgInfo(
        info.id,
        info.type,
        bytes(info.tag).hex(),
        info.name.decode(),
        info.xlated_prog_len // 8,  # sizeof(struct bpf_insn)
        info.jited_prog_len,
    )


def prog_name_by_id(prog_id: int) -> str:
    """The name of a loaded program (whoever loaded it), by its id."""
    fd = _check(_lib().bpf_prog_get_fd_by_id(prog_id), f"open program id {prog_id}")
    try:
        return prog_info(fd).name
    finally:
        os.close(fd)


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check(
        _lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
        f"map info of fd {fd}",
    )
    return MapInfo(
        info.id, info.type, info.key_size, info.value_size, info.max_entries, info.name.decode()
    )


@cache
def possible_cpus() -> int:
    """Per-CPU map values hold one slot per possible CPU, not per online one."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


class Map:
    """A map opened by fd, with byte-level access; layout is the caller's business."""

    def __init__(self, fd: int, name: str = "") -> None:
        self.fd = fd
        self.info = map_info(fd)
        self.name = name or self.info.name
        per_cpu = self.info.type in _PERCPU_MAP_TYPES
        # The kernel copies per-CPU values in 8-byte-aligned slots.
        self.slot_size = (self.info.value_size + 7) // 8 * 8 if per_cpu else self.info.value_size
        self.slots = possible_cpus() if per_cpu else 1
        self.value_bytes = self.slot_size * self.slots

    @classmethod
    def open_pinned(cls, path: Path | str) -> Map:
        return cls(obj_get(path), Path(path).name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, key: bytes) -> ctypes.Array:
        if len(key) != self.info.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, want {self.info.key_size}")
        return ctypes.create_string_buffer(key, len(key))

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """Set key to value (for per-CPU maps, `value_bytes` covering every slot)."""
        if len(value) != self.value_bytes:
            raise ValueError(
                f"map {self.name}: value is {len(value)} bytes, want {self.value_bytes}"
            )
        buf = ctypes.create_string_buffer(value, len(value))
        _check(
            _lib().bpf_map_update_elem(self.fd, self._key(key), buf, flags),
            f"update map {self.name}",
        )

    def mmap(self) -> mmap.mmap:
        """The values of an array made with BPF_F_MMAPABLE, shared with the programs:
        element i at i * (value size rounded up to 8). Stores are plain memory stores,
        atomic no further than the CPU makes them: write only what no program reads."""
        stride = (self.info.value_size + 7) // 8 * 8
        return mmap.mmap(self.fd, stride * self.info.max_entries)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        """Set many keys at once: keys and values are the packed keys and values, in order."""
        count = len(keys) // self.info.key_size
        if len(keys) != count * self.info.key_size or len(values) != count * self.value_bytes:
            raise ValueError(
                f"map {self.name}: batch of {len(keys)} key and {len(values)} value bytes"
            )
        if not count:
            return
        done = ctypes.c_uint32(count)
        _check(
            _lib().bpf_map_update_batch(self.fd, keys, values, ctypes.byref(done), None),
            f"update map {self.name} ({count} entries)",
        )

    def delete_batch(self, keys: bytes) -> None:
        """Delete many keys at once (packed, in order); every one must be there."""
        count = len(keys) // self.info.key_size
        if len(keys) != count * self.info.key_size:
            raise ValueError(f"map {self.name}: batch of {len(keys)} key bytes")
        if not count:
            return
        done = ctypes.c_uint32(count)
        _check(
            _lib().bpf_map_delete_batch(self.fd, keys, ctypes.byref(done), None),
            f"delete from map {self.name} ({count} entries)",
        )

    def lookup(self, key: bytes) -> bytes | None:
        """The value (for per-CPU maps, all slots concatenated), or None if absent."""
        out = ctypes.create_string_buffer(self.value_bytes)
        ret = _lib().bpf_map_lookup_elem(self.fd, self._key(key), out)
        if ret == -errno.ENOENT:
            return None
        _check(ret, f"lookup in map {self.name}")
        return out.raw

    def lookup_per_cpu(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        return [
            raw[i * self.slot_size : i * self.slot_size + self.info.value_size]
            for i in range(self.slots)
        ]

    def delete(self, key: bytes) -> bool:
        ret = _lib().bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -errno.ENOENT:
            return False
        _check(ret, f"delete from map {self.name}")
        return True

    def items_batch(self, chunk: int = 4096) -> dict[bytes, bytes]:
        """Every key and value, a chunk a call (hash maps; keys() is one call per key)."""
        size = self.info.key_size
        keys = ctypes.create_string_buffer(size * chunk)
        values = ctypes.create_string_buffer(self.value_bytes * chunk)
        # The batch position is opaque to us; the kernel's hash maps use 4 bytes of it.
        token_in = ctypes.create_string_buffer(max(size, 8))
        token_out = ctypes.create_string_buffer(max(size, 8))
        out: dict[bytes, bytes] = {}
        vsize = self.value_bytes
        first = True
        while True:
            count = ctypes.c_uint32(chunk)
            ret = _lib().bpf_map_lookup_batch(
                self.fd,
                None if first else token_in,
                token_out,
                keys,
                values,
                ctypes.byref(count),
                None,
            )
            if ret < 0 and ret != -errno.ENOENT:
                _check(ret, f"iterate map {self.name}")
            raw, vals = keys.raw, values.raw
            for i in range(count.value):
                out[raw[i * size : (i + 1) * size]] = vals[i * vsize : (i + 1) * vsize]
            if ret == -errno.ENOENT:
                return out
            ctypes.memmove(token_in, token_out, len(token_out))
            first = False

    def keys(self) -> list[bytes]:
        keys: list[bytes] = []
        cur = None
        nxt = ctypes.create_string_buffer(self.info.key_size)
        while True:
            ret = _lib().bpf_map_get_next_key(self.fd, cur, nxt)
            if ret == -errno.ENOENT:
                return keys
            _check(ret, f"iterate map {self.name}")
            keys.append(nxt.raw)
            cur = ctypes.create_string_buffer(nxt.raw, len(nxt.raw))


def prog_test_run(prog_fd: int, data: bytes, repeat: int = 1, out_size: int = 4096) -> TestRun:
    """Run a loaded program once over data with BPF_PROG_TEST_RUN."""
    data_in = ctypes.create_string_buffer(data, len(data))
    data_out = ctypes.create_string_buffer(max(out_size, len(data)))
    opts = _TestRunOpts(
        sz=ctypes.sizeof(_TestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_out=ctypes.cast(data_out, ctypes.c_void_p),
        data_size_in=len(data),
        data_size_out=len(data_out),
        repeat=repeat,
    )
    _check(
        _lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)),
        f"test run of program fd {prog_fd}",
    )
    return TestRun(opts.retval, data_out.raw[: opts.data_size_out], opts.duration)


def link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    """Create a BPF link (sk_lookup: target is a netns fd); the caller owns the link fd."""
    return _check(
        _lib().bpf_link_create(prog_fd, target_fd, attach_type, None),
        f"link program fd {prog_fd} (attach type {attach_type})",
    )
