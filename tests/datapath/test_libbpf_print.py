"""libbpf's own messages go through our log: a refused XDP attach is one error, ours,
with the kernel's reason folded in, and no `libbpf:` line of libbpf's on stderr."""

from __future__ import annotations

import logging
import os

import pytest

from zeroserve.datapath import attach, libbpf


def test_refused_attach_is_one_message(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="zeroserve.libbpf")
    prog = libbpf.xdp_pass_program()
    try:
        with attach.scratch_veth("zs-print") as veth:
            attach.attach_xdp(veth.inner, prog, attach.XdpMode.GENERIC, ns=veth.ns)
            # A first attach never clobbers: the kernel refuses it with an extack message.
            with pytest.raises(attach.AttachError) as refused:
                attach.attach_xdp(veth.inner, prog, attach.XdpMode.GENERIC, ns=veth.ns)
    finally:
        os.close(prog)
    assert str(refused.value) == (
        f"XDP generic attach on ifindex {veth.inner}: Device or resource busy"
        " (XDP program already attached)"
    )
    assert "libbpf" not in capfd.readouterr().err
    logged = [r.getMessage() for r in caplog.records if r.name == "zeroserve.libbpf"]
    assert "libbpf: Kernel error message: XDP program already attached" in logged
