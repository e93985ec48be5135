"""Map lifetime of the XDP layer: versioned pin paths, rules and counters that
survive a reload, features that come and go, and set_deny's replace semantics."""

from __future__ import annotations

import ctypes
import os

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from zeroserve.datapath import libbpf
from zeroserve.datapath.pins import LAYOUT_VERSION
from zeroserve.datapath.structs import STRUCTS
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer

XDP_DROP, XDP_PASS = 1, 2
PKT = bytes(Ether() / IP(src="203.0.113.9", dst="198.18.0.1") / TCP(dport=443, flags="S"))


def test_maps_pinned_under_versioned_path(layout):
    with XdpLayer.load(XdpFeatures(), layout):
        pinned = sorted(os.listdir(layout.root / f"v{LAYOUT_VERSION}" / "xdp"))
    assert pinned == [
        "zs_deny4_blocks",
        "zs_deny4_chunks",
        "zs_deny4_hostmap",
        "zs_deny4_hosts",
        "zs_deny4_net16",
        "zs_deny4_net24",
        "zs_deny4_rules",
        "zs_deny6_blocks",
        "zs_deny6_host",
        "zs_deny6_lpm",
        "zs_deny6_rules",
        "zs_deny_gen",
        "zs_deny_ports",
        "zs_drops",
        "zs_rule_stats",
        "zs_verdicts",
    ]
    assert not os.listdir(layout.base / "handoff"), "hand-off pins must be gone"


def test_kernel_map_shapes_match_the_python_mirror(layout):
    def size(name):
        return {"__u32": 4, "__u64": 8}.get(name) or ctypes.sizeof(STRUCTS[name])

    features = XdpFeatures(
        rules_max=64, deny_lpm_max=100, deny_exact_max=200, deny_classes=2, deny4_hosts_max=300
    )
    with XdpLayer.load(features, layout) as xdp:
        shapes = {
            name: (t.info.key_size, t.info.value_size, t.info.max_entries)
            for name, t in xdp.maps.items()
        }
    assert shapes == {
        name: (size(key), size(value), max_entries)
        for name, (key, value, max_entries) in features.maps().items()
    }
    assert shapes["zs_deny6_lpm"] == (24, 4, 100)
    assert shapes["zs_deny6_host"] == (20, 4, 200)
    assert shapes["zs_deny4_hosts"] == (4, 4, 2 * 300 * 2)  # two generations, two classes
    assert shapes["zs_rule_stats"] == (4, 16, 64)


def test_rules_and_counters_survive_a_reload(layout):
    with XdpLayer.load(XdpFeatures(), layout) as first:
        first.set_deny({1: ["203.0.113.0/24"]})
        assert libbpf.prog_test_run(first.prog_fd, PKT).retval == XDP_DROP
        first_id = first.prog_id
    with XdpLayer.load(XdpFeatures(), layout) as second:
        assert second.prog_id != first_id
        assert second.deny_entries() == {"203.0.113.0/24": 1}
        assert second.rule_counter(1).packets == 1
        assert libbpf.prog_test_run(second.prog_fd, PKT).retval == XDP_DROP
        assert second.rule_counter(1).packets == 2


def test_reload_without_a_feature_unpins_its_maps(layout):
    with XdpLayer.load(XdpFeatures(), layout):
        pass
    with XdpLayer.load(XdpFeatures(deny_v6=False), layout):
        assert not (layout.hook_dir("xdp") / "zs_deny6_lpm").exists()
        assert not (layout.hook_dir("xdp") / "zs_deny6_host").exists()
        assert (layout.hook_dir("xdp") / "zs_deny4_net24").exists()


def test_resized_maps_are_recreated_not_silently_reused(layout):
    with XdpLayer.load(XdpFeatures(rules_max=64), layout) as small:
        small.set_deny({1: ["203.0.113.0/24"]})
    bigger = XdpFeatures(rules_max=128)
    with XdpLayer.load(bigger, layout) as big:
        assert big.maps["zs_rule_stats"].info.max_entries == 128
        # Only the resized map was replaced; the deny rules are intact.
        assert big.deny_entries() == {"203.0.113.0/24": 1}
        big.set_deny({127: ["203.0.113.0/24"]})
        libbpf.prog_test_run(big.prog_fd, PKT)
        assert big.rule_counter(127).packets == 1


def test_set_deny_replaces_the_whole_rule_set(layout):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        xdp.set_deny({1: ["203.0.113.0/24", "192.0.2.7"], 2: ["2001:db8::/32", "2001:db8::1"]})
        assert xdp.deny_entries() == {
            "203.0.113.0/24": 1,
            "192.0.2.7/32": 1,
            "2001:db8::/32": 2,
            "2001:db8::1/128": 2,
        }
        xdp.set_deny({3: ["198.51.100.0/24", "203.0.113.0/24"]})
        assert xdp.deny_entries() == {"198.51.100.0/24": 3, "203.0.113.0/24": 3}
        before = xdp.rule_counter(3).packets
        assert libbpf.prog_test_run(xdp.prog_fd, PKT).retval == XDP_DROP
        assert xdp.rule_counter(3).packets == before + 1
        xdp.set_deny({})
        assert xdp.deny_entries() == {}
        assert libbpf.prog_test_run(xdp.prog_fd, PKT).retval == XDP_PASS


def test_host_bits_are_masked(layout):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        xdp.set_deny({1: ["203.0.113.77/24"]})
        assert xdp.deny_entries() == {"203.0.113.0/24": 1}


@pytest.mark.parametrize("rule", [0, 1024, -1])
def test_rule_ids_outside_the_counter_table_are_refused(layout, rule):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        with pytest.raises(ValueError, match=f"rule id {rule} outside 1..1023"):
            xdp.set_deny({rule: ["203.0.113.0/24"]})


def test_bad_prefix_is_refused_before_any_change(layout):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        xdp.set_deny({1: ["203.0.113.0/24"]})
        with pytest.raises(ValueError):
            xdp.set_deny({2: ["198.51.100.0/24", "not-an-address"]})
        assert xdp.deny_entries() == {"203.0.113.0/24": 1}
