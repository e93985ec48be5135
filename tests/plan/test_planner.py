"""The planner over adapted Caddyfiles: each rule's layer, reason and line."""

from __future__ import annotations

import copy

import pytest

from zeroserve.adapt import adapt_caddyfile
from zeroserve.plan import Layer, LineIndex, build_plan, parse_appliance_config
from zeroserve.plan.model import CookiePort, DenyRule, RateRule, SynCookies
from zeroserve.plan.placers import HANDLERS, MATCHERS


def plan(caddyfile: str, appliance: dict | None = None):
    body = caddyfile.encode()
    config = adapt_caddyfile(body).config
    lines = LineIndex("Caddyfile", body)
    return build_plan(config, parse_appliance_config(appliance) if appliance else None, lines)


def rows(p, what: str):
    return [r for r in p.placements if r.what.startswith(what)]


def only(p, what: str):
    (row,) = rows(p, what)
    return row


# Caddyfile, the row's WHAT prefix, layer, reason substring, hint substring, line
CASES = [
    (
        ":8080 {\n\t@bad remote_ip 203.0.113.0/24 2001:db8::/32\n\tabort @bad\n\trespond ok\n}\n",
        "abort",
        Layer.XDP,
        "XDP drops the packets (rule 1)",
        "",
        "Caddyfile:3",
    ),
    (
        ":8080 {\n\t@bad remote_ip 203.0.113.0/24\n\tabort @bad\n\trespond ok\n}\n",
        "respond",
        Layer.ENGINE,
        "`respond` needs HTTP",
        "",
        "Caddyfile:4",
    ),
    (
        ":8080 {\n\t@bad remote_ip 203.0.113.0/24\n\trespond @bad 403\n}\n",
        "respond 403",
        Layer.ENGINE,
        "`respond` needs HTTP",
        "`abort` would run in XDP",
        "Caddyfile:3",
    ),
    (
        "example.com {\n\t@bad remote_ip 203.0.113.0/24\n\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "`host` needs HTTP",
        "only remote_ip/client_ip matchers",
        "Caddyfile:3",
    ),
    (
        ":8080 {\n\t@bad client_ip 203.0.113.9\n\tabort @bad\n}\n",
        "abort",
        Layer.XDP,
        "XDP drops",
        "",
        "Caddyfile:3",
    ),
    (
        "{\n\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}\n}\n\n"
        ":8080 {\n\t@bad client_ip 203.0.113.9\n\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "trusted_proxies",
        "`remote_ip`",
        "Caddyfile:9",
    ),
    (
        "{\n\tservers {\n\t\tlistener_wrappers {\n\t\t\tproxy_protocol\n\t\t\ttls\n\t\t}\n"
        "\t}\n}\n\n:8080 {\n\t@bad remote_ip 203.0.113.9\n\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "proxy_protocol",
        "without PROXY protocol",
        "Caddyfile:12",
    ),
    (
        ":8080 {\n\t@bad {\n\t\tremote_ip 203.0.113.9\n\t\tpath /admin*\n\t}\n\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "`path` needs HTTP",
        "",
        "Caddyfile:6",
    ),
    (
        ":8080 {\n\t@bad {\n\t\tremote_ip 203.0.113.9\n\t\tclient_ip 198.51.100.1\n\t}\n"
        "\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "two address matchers in one set",
        "one address matcher per set",
        "Caddyfile:6",
    ),
    (
        ":8080 {\n\t@bad not remote_ip 10.0.0.0/8\n\tabort @bad\n}\n",
        "abort",
        Layer.ENGINE,
        "`not` needs HTTP",
        "",
        "Caddyfile:3",
    ),
    (
        ":8080 {\n\troute {\n\t\trespond /x hi\n\t\tabort\n\t}\n}\n",
        "abort",
        Layer.ENGINE,
        "an earlier route (srv0.routes[0].routes[0]) may answer first",
        "put the abort before",
        "Caddyfile:4",
    ),
    (
        ":8080 {\n\troute {\n\t\theader X-A b\n\t\tabort\n\t}\n}\n",
        "abort",
        Layer.XDP,
        "XDP drops",
        "",
        "Caddyfile:4",
    ),
    (
        "http://a.test:8080 {\n\tbind 198.18.0.1\n\tabort\n}\n\n"
        "http://b.test:8080 {\n\tbind 198.18.0.2\n\trespond hi\n}\n",
        "abort",
        Layer.ENGINE,
        "port 8080 is shared with another server",
        "a port of its own",
        "Caddyfile:3",
    ),
    (
        ":8080 {\n\treverse_proxy 127.0.0.1:9000\n}\n",
        "reverse_proxy",
        Layer.ENGINE,
        "proxies HTTP",
        "",
        "Caddyfile:2",
    ),
]


@pytest.mark.parametrize(("caddyfile", "what", "layer", "reason", "hint", "line"), CASES)
def test_placement(caddyfile, what, layer, reason, hint, line):
    row = only(plan(caddyfile), what)
    assert (row.layer, row.line) == (layer, line)
    assert reason in row.reason
    assert hint in row.hint
    if not hint:
        assert row.hint == "" or layer is Layer.ENGINE


def test_deny_rules_carry_prefixes_and_the_listener_port():
    p = plan(
        ":8080, :8443 {\n\t@a remote_ip 203.0.113.7/24\n\tabort @a\n}\n\n"
        ":9090 {\n\t@b remote_ip 2001:db8::1\n\tabort @b\n\tabort\n}\n"
    )
    # Caddy makes one server per port here, so each gets its own rule and counter.
    assert p.xdp.deny == [
        DenyRule(1, ("203.0.113.0/24",), (8080,)),
        DenyRule(2, ("203.0.113.0/24",), (8443,)),
        DenyRule(3, ("2001:db8::1/128",), (9090,)),
        DenyRule(4, ("0.0.0.0/0", "::/0"), (9090,)),
    ]


def test_a_handler_that_answers_holds_back_the_rest_of_its_route():
    config = adapt_caddyfile(b":8080 {\n\tabort\n}\n").config
    route = config["apps"]["http"]["servers"]["srv0"]["routes"][0]
    route["handle"].insert(0, {"handler": "static_response", "body": "first"})
    row = next(r for r in build_plan(config).placements if r.what == "abort")
    assert row.layer is Layer.ENGINE
    assert "an earlier handler (srv0.routes[0]) may answer first" in row.reason


def test_an_xdp_deny_before_does_not_hold_later_rules_back():
    p = plan(
        ":8080 {\n\troute {\n\t\tabort @a\n\t\tabort @b\n\t}\n"
        "\t@a remote_ip 10.0.0.0/8\n\t@b remote_ip 192.0.2.0/24\n}\n"
    )
    assert [r.layer for r in rows(p, "abort")] == [Layer.XDP, Layer.XDP]


def test_error_routes_and_named_routes_stay():
    p = plan("&(app) {\n\tabort\n}\n:8080 {\n\thandle_errors {\n\t\tabort\n\t}\n\tinvoke app\n}\n")
    errors, named = rows(p, "abort")
    assert (errors.rule, errors.layer, errors.line) == (
        "srv0.errors.routes[0].routes[0]",
        Layer.ENGINE,
        "Caddyfile:6",
    )
    assert "runs only after a handler fails" in errors.reason
    assert named.rule.startswith("srv0.named_routes.app")
    assert "only where `invoke` calls it" in named.reason
    assert p.xdp.deny == []


def test_json_config_has_no_lines():
    config = adapt_caddyfile(b":8080 {\n\tabort\n}\n").config
    (row,) = [r for r in build_plan(config).placements if r.what == "abort"]
    assert (row.line, row.layer) == ("n/a", Layer.XDP)


RATE = {
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "listen": [":8080"],
                    "routes": [
                        {
                            "handle": [
                                {
                                    "handler": "rate_limit",
                                    "rate_limits": {
                                        "per_ip": {
                                            "key": "{http.request.remote.host}",
                                            "window": 60_000_000_000,
                                            "max_events": 100,
                                        }
                                    },
                                },
                                {"handler": "static_response", "body": "ok"},
                            ]
                        }
                    ],
                }
            }
        }
    }
}


def test_rate_limit_per_source_goes_to_xdp():
    p = build_plan(RATE)
    row = next(r for r in p.placements if r.what == "rate_limit")
    assert row.layer is Layer.XDP
    assert p.xdp.rate == [RateRule(1, (8080,), 100, 60_000_000_000)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": "{http.request.header.X-Api-Key}"}, "not the client address"),
        ({"match": [{"path": ["/api/*"]}]}, "its own request matchers"),
    ],
)
def test_rate_limit_on_anything_else_stays(change, reason):
    config = copy.deepcopy(RATE)
    route = config["apps"]["http"]["servers"]["srv0"]["routes"][0]
    route["handle"][0]["rate_limits"]["per_ip"].update(change)
    p = build_plan(config)
    row = next(r for r in p.placements if r.what == "rate_limit")
    assert row.layer is Layer.ENGINE
    assert reason in row.reason
    assert "would run in XDP" in row.hint
    assert p.xdp.rate == []


def test_appliance_config_sites_and_ports():
    p = plan(
        ":8080 {\n\trespond ok\n}\n\n"
        "http://198.18.0.1:9090 {\n\tbind 198.18.0.1\n\trespond ok\n}\n",
        {
            "drop_unserved_ports": True,
            "allow_ports": [22],
            "mss_clamp": 1400,
            "sites": {":8080": {"dscp": "EF"}, "198.18.0.1:9090": {"mss_clamp": 1300}},
        },
    )
    sites = {(s.address, s.port): (s.dscp, s.mss) for s in p.tc.sites}
    assert sites == {("", 8080): (46, 1400), ("198.18.0.1", 9090): (None, 1300)}
    assert p.xdp.drop_unserved and p.xdp.open_ports == (22, 8080, 9090)
    assert [(lst.address, lst.port) for lst in p.sock.dispatch] == [
        ("", 8080),
        ("198.18.0.1", 9090),
    ]
    assert {r.layer for r in p.placements if r.rule.startswith("site ")} == {Layer.TC}


def test_syn_cookies_guard_every_served_tcp_port():
    p = plan(
        ":8080 {\n\trespond ok\n}\n\n"
        "http://198.18.0.1:9090 {\n\tbind 198.18.0.1\n\trespond ok\n}\n",
        {"syn_cookies": {"threshold": 5000}},
    )
    assert p.xdp.syncookies == SynCookies(5000, (CookiePort(8080), CookiePort(9090)))
    assert p.xdp.needed
    (row,) = [r for r in p.placements if r.rule == "syn_cookies"]
    assert row.layer is Layer.XDP
    assert row.what == "TCP SYNs to 8080, 9090 past 5000/s per port"
    assert plan(":8080 {\n\trespond ok\n}\n").xdp.syncookies is None


def test_syn_cookie_synacks_carry_the_marks_tc_puts_on_the_stacks():
    """XDP_TX skips TC: the port's smallest clamp, and its DSCP where the sites agree."""
    p = plan(
        ":8080 {\n\trespond ok\n}\n\n"
        "http://198.18.0.1:9090 {\n\tbind 198.18.0.1\n\trespond ok\n}\n\n"
        "http://198.18.0.2:9090 {\n\tbind 198.18.0.2\n\trespond ok\n}\n",
        {
            "syn_cookies": {"threshold": 10},
            "mss_clamp": 1400,
            "sites": {
                ":8080": {"dscp": "EF"},
                "198.18.0.1:9090": {"mss_clamp": 1300, "dscp": "AF41"},
                "198.18.0.2:9090": {"dscp": "CS1"},
            },
        },
    )
    assert p.xdp.syncookies.ports == (CookiePort(8080, 1400, 46), CookiePort(9090, 1300, None))


def test_a_policy_for_no_site_warns():
    p = plan(":8080 {\n\trespond ok\n}\n", {"sites": {":9999": {"dscp": 8}}})
    assert p.warnings == ["site :9999 in the appliance config serves nothing"]


def test_every_handler_and_matcher_the_adapter_emits_has_a_placer():
    from tests.adapt.corpus import fixtures

    handlers: set[str] = set()
    matchers: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("handler"), str):
                handlers.add(node["handler"])
            for matcher_set in node.get("match") or []:
                if isinstance(matcher_set, dict):
                    matchers.update(matcher_set)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for fixture in fixtures():
        if fixture.expected_json:
            walk(fixture.expected_json.get("apps", {}).get("http", {}))
    # Handlers inside reverse_proxy's transports are not route handlers.
    handlers -= {"http", "fastcgi"}
    assert handlers - set(HANDLERS) == set()
    assert matchers - set(MATCHERS) == set()
