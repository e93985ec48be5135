"""The appliance config: network-only policy that a Caddyfile cannot say.

Operators keep their Caddyfile unchanged; what concerns packets rather than HTTP
(which interfaces, XDP mode, DSCP and MSS per site, dropping unserved ports, SYN
cookies) lives in a separate TOML or YAML file:

    interfaces = ["eth0"]
    xdp_mode = "native"          # or "generic"
    drop_unserved_ports = true   # new TCP connections to ports no site serves
    allow_ports = [22]           # kept open although no site serves them
    mss_clamp = 1400             # every site's SYN and SYN-ACK
    syn_cookies = { threshold = 10000 }  # see below

    [cache]                      # the `cache` handler's shared store (engine, not packets)
    experiment_header = "X-Experiment"   # or experiment_cookie = "arm": never both
    max_bytes = 268435456        # memory bound of the store

    [sites.":443"]               # local address:port, ":port" is every address
    dscp = "AF41"                # or 0..63
    mss_clamp = 1360

`syn_cookies.threshold` is new TCP connections per second, per served port, over
all CPUs (each CPU takes an equal share, rounded up). Past it, XDP answers a SYN
itself with a cookie SYN-ACK, and only the client's ACK reaches the stack. While
it is on, the agent sets `net.ipv4.tcp_syncookies=2` and `net.ipv4.tcp_timestamps=2`
in its network namespace and puts the old values back when it goes
(zeroserve.datapath.syncookie says why). It is at least 1: the stack takes a
cookie ACK only on a listener that sent a cookie itself lately, which the SYNs
under the threshold see to.

The response cache is the one exception to "network only": its experiment arm and
memory bound are per node, not per site, and have no place in the plugin's Caddyfile
syntax. The arm's value (with the deployment id of `zeroserve run --deploy-id`) is
part of every cache key, so one arm never reads another's entries.

Every key is checked; a mistake is one line naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

XDP_MODES = ("native", "generic")
# RFC 4594 / RFC 2474 names: class selectors, assured forwarding, expedited forwarding.
DSCP_NAMES = (
    {"DEFAULT": 0, "EF": 46, "VA": 44, "LE": 1}
    | {f"CS{n}": n * 8 for n in range(8)}
    | {f"AF{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)}
)
# IPv4 minimum MTU 576 less 40 bytes of headers; an interface's MTU bounds it above.
MSS_MIN, MSS_MAX = 536, 65495
# Each CPU's share is counted in 32 bits.
SYN_THRESHOLD_MAX = 2**32 - 1


class ApplianceConfigError(Exception):
    """A bad appliance config; str() is one line naming the file."""


@dataclass(frozen=True)
class SitePolicy:
    address: str  # "" for every local address
    port: int
    dscp: int | None = None
    mss_clamp: int | None = None


@dataclass(frozen=True)
class CacheSettings:
    experiment_header: str | None = None
    experiment_cookie: str | None = None
    max_bytes: int | None = None  # None: the engine's default (256 MiB)


@dataclass(frozen=True)
class ApplianceConfig:
    interfaces: tuple[str, ...] = ()
    xdp_mode: str = "native"
    drop_unserved_ports: bool = False
    allow_ports: tuple[int, ...] = ()
    mss_clamp: int | None = None
    sites: tuple[SitePolicy, ...] = field(default_factory=tuple)
    syn_cookie_threshold: int | None = None  # SYNs per second per port; None: off
    cache: CacheSettings = field(default_factory=CacheSettings)


def load_appliance_config(path: str | Path) -> ApplianceConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ApplianceConfigError(f"{path}: {err.strerror}") from err
    if path.suffix in (".yaml", ".yml"):
        data = _yaml(path, text)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ApplianceConfigError(f"{path}: {err}") from err
    return parse_appliance_config(data, str(path))


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError as err:
        raise ApplianceConfigError(f"{path}: YAML needs PyYAML; write TOML instead") from err
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ApplianceConfigError(f"{path}: {' '.join(str(err).split())}") from err


_TOP = (
    "interfaces",
    "xdp_mode",
    "drop_unserved_ports",
    "allow_ports",
    "mss_clamp",
    "sites",
    "syn_cookies",
    "cache",
)
_SITE = ("dscp", "mss_clamp")
_SYN_COOKIES = ("threshold",)
_CACHE = ("experiment_header", "experiment_cookie", "max_bytes")


def parse_appliance_config(data: Any, source: str = "appliance config") -> ApplianceConfig:
    def fail(msg: str) -> ApplianceConfigError:
        return ApplianceConfigError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a table of settings at the top level")
    _known(data, _TOP, "", fail)
    interfaces = data.get("interfaces", [])
    if not isinstance(interfaces, list) or not all(isinstance(i, str) and i for i in interfaces):
        raise fail("interfaces: expected a list of interface names")
    mode = data.get("xdp_mode", "native")
    if mode not in XDP_MODES:
        raise fail(f"xdp_mode: {mode!r} is not one of {', '.join(XDP_MODES)}")
    drop = data.get("drop_unserved_ports", False)
    if not isinstance(drop, bool):
        raise fail("drop_unserved_ports: expected true or false")
    allow = data.get("allow_ports", [])
    if not isinstance(allow, list) or not all(_is_port(p) for p in allow):
        raise fail("allow_ports: expected a list of ports 1..65535")
    sites_raw = data.get("sites", {})
    if not isinstance(sites_raw, dict):
        raise fail('sites: expected a table keyed by "address:port"')
    sites = []
    for key, body in sites_raw.items():
        address, port = _site_key(str(key), fail)
        if not isinstance(body, dict):
            raise fail(f"sites.{key}: expected a table")
        _known(body, _SITE, f"sites.{key}.", fail)
        sites.append(
            SitePolicy(
                address,
                port,
                _dscp(body.get("dscp"), f"sites.{key}.dscp", fail),
                _mss(body.get("mss_clamp"), f"sites.{key}.mss_clamp", fail),
            )
        )
    return ApplianceConfig(
        interfaces=tuple(interfaces),
        xdp_mode=mode,
        drop_unserved_ports=drop,
        allow_ports=tuple(sorted(set(allow))),
        mss_clamp=_mss(data.get("mss_clamp"), "mss_clamp", fail),
        sites=tuple(sites),
        syn_cookie_threshold=_syn_cookies(data.get("syn_cookies"), fail),
        cache=_cache(data.get("cache"), fail),
    )


def _known(table: dict, keys: tuple[str, ...], where: str, fail: Any) -> None:
    for key in table:
        if key not in keys:
            raise fail(f"{where}{key}: unknown setting (known: {', '.join(keys)})")


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _site_key(key: str, fail: Any) -> tuple[str, int]:
    host, sep, port = key.rpartition(":")
    if not sep or not port.isdigit() or not _is_port(int(port)):
        raise fail(f'sites.{key}: expected "address:port" or ":port"')
    host = host.removeprefix("[").removesuffix("]")
    if host:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError as err:
            raise fail(f"sites.{key}: {host!r} is not an IP address") from err
    return host, int(port)


def _dscp(value: Any, where: str, fail: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.upper() in DSCP_NAMES:
        return DSCP_NAMES[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 64:
        return value
    raise fail(f"{where}: expected 0..63 or a name like EF, AF41, CS1")


def _syn_cookies(value: Any, fail: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("syn_cookies: expected a table like { threshold = 10000 }")
    _known(value, _SYN_COOKIES, "syn_cookies.", fail)
    threshold = value.get("threshold")
    if (
        not isinstance(threshold, int)
        or isinstance(threshold, bool)
        or not 1 <= threshold <= SYN_THRESHOLD_MAX
    ):
        raise fail(f"syn_cookies.threshold: expected SYNs per second in 1..{SYN_THRESHOLD_MAX}")
    return threshold


def _cache(value: Any, fail: Any) -> CacheSettings:
    if value is None:
        return CacheSettings()
    if not isinstance(value, dict):
        raise fail('cache: expected a table like { experiment_header = "X-Experiment" }')
    _known(value, _CACHE, "cache.", fail)
    names = {}
    for key in ("experiment_header", "experiment_cookie"):
        name = value.get(key)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise fail(f"cache.{key}: expected a name")
        names[key] = name
    if names["experiment_header"] and names["experiment_cookie"]:
        raise fail("cache: experiment_header and experiment_cookie exclude each other")
    size = value.get("max_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise fail("cache.max_bytes: expected a positive number of bytes")
    return CacheSettings(names["experiment_header"], names["experiment_cookie"], size)


def _mss(value: Any, where: str, fail: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and MSS_MIN <= value <= MSS_MAX:
        return value
    raise fail(f"{where}: expected an MSS in {MSS_MIN}..{MSS_MAX}")
