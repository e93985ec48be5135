"""Fixtures for tests against the real kernel: a test-only pin root that is
removed afterwards, so no test touches /sys/fs/bpf/zeroserve."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from zeroserve.datapath import pins


@pytest.fixture(autouse=True, scope="session")
def _root_only():
    if os.geteuid() != 0:
        pytest.skip("needs root: loads BPF programs and creates network namespaces")


@contextmanager
def _test_layout() -> Iterator[pins.PinLayout]:
    pins.ensure_bpffs()
    test_layout = pins.PinLayout(pins.BPFFS / f"zeroserve-test-{uuid.uuid4().hex[:12]}")
    try:
        yield test_layout
    finally:
        test_layout.remove_all()
    assert not test_layout.root.exists()


@pytest.fixture
def layout():
    with _test_layout() as test_layout:
        yield test_layout


@pytest.fixture(scope="module")
def module_layout():
    with _test_layout() as test_layout:
        yield test_layout
