"""pins.py against real bpffs: mounting, the lock, and unlinking unused pins."""

from __future__ import annotations

import ctypes
import os
import threading

import pytest

from zeroserve.datapath import libbpf, pins


def _pin_map(path):
    fd = libbpf.map_create(libbpf.MAP_TYPE_ARRAY, "zs_test", 4, 4, 1)
    try:
        libbpf.obj_pin(fd, path)
    finally:
        os.close(fd)


def test_ensure_bpffs_mounts_where_missing(tmp_path):
    target = tmp_path / "bpf"
    assert not pins.bpffs_mounted(target)
    try:
        assert pins.ensure_bpffs(target) is True
        assert pins.bpffs_mounted(target)
        assert pins.ensure_bpffs(target) is False
        _pin_map(target / "probe")  # only bpffs accepts pins
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(os.fsencode(target), 0)
    assert not pins.bpffs_mounted(target)


def test_ensure_bpffs_reports_why_it_cannot():
    with pytest.raises(pins.BpffsError, match="cannot create /proc/zeroserve-absent/bpf"):
        pins.ensure_bpffs(pins.Path("/proc/zeroserve-absent/bpf"))


def test_remove_unused_and_stale_versions(layout):
    hook = layout.prepare("xdp")
    for name in ("keep_me", "old_feature"):
        _pin_map(hook / name)
    assert layout.remove_unused("xdp", {"keep_me"}) == ["old_feature"]
    assert sorted(os.listdir(hook)) == ["keep_me"]
    old = pins.PinLayout(layout.root, version=layout.version - 1 or 99)
    _pin_map(old.prepare("xdp") / "whatever")
    assert layout.remove_stale_versions() == [old.base.name]
    assert os.listdir(layout.root) == [layout.base.name]


def test_lock_serialises(layout):
    order = []

    def other():
        with layout.lock():
            order.append("other")

    with layout.lock():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.2)
        order.append("holder")
    thread.join(5)
    assert order == ["holder", "other"]


def test_one_claim_at_a_time_and_it_outlives_version_cleanup(layout):
    held = layout.claim()
    assert held is not None
    try:
        assert layout.claim() is None, "a second agent must not get the pinned state"
        layout.remove_stale_versions()
        assert (layout.root / "owner").is_dir()
    finally:
        os.close(held)
    again = layout.claim()
    assert again is not None, "closing the fd (or dying) releases the claim"
    os.close(again)
