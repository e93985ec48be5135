"""The sysctls SYN cookies set keep their old values pinned, per network namespace:
what a dead agent's StackSysctls pinned, a new one puts back in that namespace
alone, once."""

from __future__ import annotations

from zeroserve.datapath import attach
from zeroserve.datapath.syncookie import PROC_SYS, StackSysctls

OWN = {"net/ipv4/tcp_syncookies": "0", "net/ipv4/tcp_timestamps": "1"}


def values() -> dict[str, str]:
    return {name: (PROC_SYS / name).read_text().strip() for name in OWN}


def test_pinned_old_values_are_put_back_in_their_namespace_only(layout):
    with attach.scratch_veth("zs-st") as veth:
        with attach.in_netns(veth.ns):
            (PROC_SYS / "net/ipv4/tcp_syncookies").write_text("0")
            assert values() == OWN
            StackSysctls(layout.sysctls_pin).enable()  # then forgotten, as by a kill -9
            assert values() == dict.fromkeys(OWN, "2")
        with attach.in_netns(veth.peer_ns):
            defaults = values()
            assert StackSysctls(layout.sysctls_pin).recover() == {}
            assert values() == defaults
        with attach.in_netns(veth.ns):
            assert StackSysctls(layout.sysctls_pin).recover() == OWN
            assert values() == OWN
            assert StackSysctls(layout.sysctls_pin).recover() == {}


def test_a_restore_unpins_what_it_put_back(layout):
    with attach.scratch_veth("zs-st") as veth, attach.in_netns(veth.ns):
        before = values()
        stack = StackSysctls(layout.sysctls_pin)
        stack.enable()
        stack.enable()  # a second plan with cookies keeps the first old values
        stack.restore()
        assert values() == before
        assert StackSysctls(layout.sysctls_pin).recover() == {}
