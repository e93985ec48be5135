"""The appliance config (TOML or YAML) and the `zeroserve plan` verb."""

from __future__ import annotations

import pytest

from zeroserve.cli.main import main
from zeroserve.plan import ApplianceConfigError, load_appliance_config, parse_appliance_config
from zeroserve.plan.appliance import ApplianceConfig, SitePolicy

TOML = """\
interfaces = ["eth0", "eth1"]
xdp_mode = "generic"
drop_unserved_ports = true
allow_ports = [22, 22, 2222]
mss_clamp = 1400
syn_cookies = { threshold = 10000 }

[sites.":443"]
dscp = "af41"

[sites."[2001:db8::1]:8443"]
dscp = 10
mss_clamp = 1280
"""

YAML = """\
interfaces: [eth0, eth1]
xdp_mode: generic
drop_unserved_ports: true
allow_ports: [22, 22, 2222]
mss_clamp: 1400
syn_cookies: {threshold: 10000}
sites:
  ":443": {dscp: AF41}
  "[2001:db8::1]:8443": {dscp: 10, mss_clamp: 1280}
"""

EXPECTED = ApplianceConfig(
    interfaces=("eth0", "eth1"),
    xdp_mode="generic",
    drop_unserved_ports=True,
    allow_ports=(22, 2222),
    mss_clamp=1400,
    sites=(SitePolicy("", 443, 34, None), SitePolicy("2001:db8::1", 8443, 10, 1280)),
    syn_cookie_threshold=10000,
)


@pytest.mark.parametrize(("name", "text"), [("edge.toml", TOML), ("edge.yaml", YAML)])
def test_toml_and_yaml_say_the_same(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert load_appliance_config(path) == EXPECTED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"interface": ["eth0"]}, "interface: unknown setting (known: interfaces, "),
        ({"xdp_mode": "offload"}, "xdp_mode: 'offload' is not one of native, generic"),
        ({"allow_ports": [0]}, "allow_ports: expected a list of ports 1..65535"),
        ({"drop_unserved_ports": "yes"}, "drop_unserved_ports: expected true or false"),
        ({"mss_clamp": 100}, "mss_clamp: expected an MSS in 536..65495"),
        ({"sites": {"443": {}}}, 'sites.443: expected "address:port" or ":port"'),
        ({"sites": {"example.com:443": {}}}, "sites.example.com:443: 'example.com' is not an IP"),
        ({"sites": {":443": {"dscp": 64}}}, "sites.:443.dscp: expected 0..63 or a name"),
        ({"sites": {":443": {"dscp": "XX"}}}, "sites.:443.dscp: expected 0..63 or a name"),
        ({"sites": {":443": {"tos": 1}}}, "sites.:443.tos: unknown setting"),
        ({"syn_cookies": 10000}, "syn_cookies: expected a table like { threshold = 10000 }"),
        ({"syn_cookies": {"rate": 1}}, "syn_cookies.rate: unknown setting (known: threshold)"),
        ({"syn_cookies": {}}, "syn_cookies.threshold: expected SYNs per second in 1..4294967295"),
        ({"syn_cookies": {"threshold": 0}}, "syn_cookies.threshold: expected SYNs per second"),
        ({"syn_cookies": {"threshold": 2**32}}, "syn_cookies.threshold: expected SYNs per"),
        ({"syn_cookies": {"threshold": True}}, "syn_cookies.threshold: expected SYNs per"),
        ({"syn_cookies": {"threshold": "1k"}}, "syn_cookies.threshold: expected SYNs per"),
        ([1, 2], "expected a table of settings at the top level"),
    ],
)
def test_mistakes_are_one_line(data, message):
    with pytest.raises(ApplianceConfigError) as info:
        parse_appliance_config(data, "edge.toml")
    assert str(info.value).startswith("edge.toml: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_syntax_errors_name_the_file(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text("interfaces = [\n")
    with pytest.raises(ApplianceConfigError, match=r"^.*edge\.toml: "):
        load_appliance_config(bad)
    with pytest.raises(ApplianceConfigError, match="No such file or directory"):
        load_appliance_config(tmp_path / "missing.toml")


CADDYFILE = """\
:8080 {
\t@blocked remote_ip 203.0.113.0/24
\tabort @blocked
\trespond "ok"
}
"""


def test_plan_verb_prints_the_table(tmp_path, capsys):
    (tmp_path / "Caddyfile").write_text(CADDYFILE)
    (tmp_path / "edge.toml").write_text('[sites.":8080"]\ndscp = "EF"\n')
    argv = ["plan", "--config", str(tmp_path / "Caddyfile")]
    assert main([*argv, "--appliance-config", str(tmp_path / "edge.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RULE", "WHAT", "LINE", "LAYER", "REASON"]
    abort = next(line for line in out if "abort @ remote_ip 203.0.113.0/24" in line)
    assert f"{tmp_path}/Caddyfile:3  xdp" in abort
    respond = next(line for line in out if "respond 200" in line)
    assert "engine  `respond` needs HTTP" in respond
    assert any(line.startswith("site :8080") and "DSCP 46" in line for line in out)


def test_plan_verb_on_json_has_no_lines(tmp_path, capsys):
    (tmp_path / "Caddyfile").write_text(CADDYFILE)
    assert main(["adapt", "--config", str(tmp_path / "Caddyfile")]) == 0
    (tmp_path / "caddy.json").write_text(capsys.readouterr().out)
    assert main(["plan", "--config", str(tmp_path / "caddy.json")]) == 0
    abort = next(ln for ln in capsys.readouterr().out.splitlines() if "abort" in ln)
    assert " n/a " in abort and " xdp " in abort


def test_plan_verb_bad_appliance_config_is_one_error_line(tmp_path, capsys):
    (tmp_path / "Caddyfile").write_text(CADDYFILE)
    (tmp_path / "edge.toml").write_text("xdp_mode = 'offload'\n")
    argv = ["plan", "-c", str(tmp_path / "Caddyfile"), "--appliance-config"]
    assert main([*argv, str(tmp_path / "edge.toml")]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"Error: {tmp_path}/edge.toml: xdp_mode: 'offload' is not one of native, generic\n"
    )
