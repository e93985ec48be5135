"""`rate_limit`: the `rate_limit` handler of the mholt/caddy-ratelimit plugin.

From that plugin's caddyfile.go (the handler's JSON fields are in handler.go,
ratelimit.go and distributed.go; see docs/COMPATIBILITY.md, "Plugins"). Like every
plugin directive it has no place in the default directive order: use it inside
`route`, or order it with the `order` global option.
"""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.storage import unmarshal_storage
from zeroserve.adapt.values import atoi, parse_duration, parse_float
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


def _duration(d: Dispenser, message: str) -> int:
    try:
        return parse_duration(d.val())
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


@handler_directive("rate_limit")
def parse_rate_limit(h: Helper) -> dict:
    """Syntax::

        rate_limit [<matcher>] {
            zone <name> {
                key    <string>
                window <duration>
                events <max_events>
            }
            distributed {
                read_interval  <duration>
                write_interval <duration>
            }
            storage <module...>
            jitter  <percent>
            sweep_interval <duration>
        }

    Unknown subdirectives are ignored, as the plugin does.
    """
    out: dict = {"handler": "rate_limit"}
    zones = GoMap()
    while h.next():
        if h.next_arg():
            raise h.arg_err()
        nesting = h.nesting()
        while h.next_block(nesting):
            sub = h.val()
            if sub == "zone":
                if not h.next_arg():
                    raise h.arg_err()
                name = h.val()
                zones[name] = _zone(h.dispenser)
            elif sub == "distributed":
                out["distributed"] = _distributed(h.dispenser)
            elif sub == "storage":
                if not h.next_arg():
                    raise h.arg_err()
                out["storage"] = unmarshal_storage(h.dispenser)
            elif sub == "jitter":
                if not h.next_arg():
                    raise h.arg_err()
                if out.get("jitter"):
                    raise h.errf("jitter already specified: %v", out["jitter"])
                try:
                    jitter = parse_float(h.val())
                except ValueError as exc:
                    raise h.errf("invalid jitter percentage '%s': %v", h.val(), exc) from None
                if jitter:
                    out["jitter"] = jitter
            elif sub == "sweep_interval":
                if not h.next_arg():
                    raise h.arg_err()
                if out.get("sweep_interval"):
                    raise h.errf("sweep interval already specified: %v", out["sweep_interval"])
                interval = _duration(h.dispenser, "invalid sweep interval '%s': %v")
                if interval:
                    out["sweep_interval"] = interval
    if zones:
        out["rate_limits"] = zones
    return out


def _zone(d: Dispenser) -> dict:
    zone: dict = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "key":
            if not d.next_arg():
                raise d.arg_err()
            if zone.get("key"):
                raise d.errf("zone key already specified: %s", zone["key"])
            if d.val():
                zone["key"] = d.val()
        elif sub == "window":
            if not d.next_arg():
                raise d.arg_err()
            if zone.get("window"):
                raise d.errf("zone window already specified: %v", zone["window"])
            window = _duration(d, "invalid window duration '%s': %v")
            if window:
                zone["window"] = window
        elif sub == "events":
            if not d.next_arg():
                raise d.arg_err()
            if zone.get("max_events"):
                raise d.errf("zone max events already specified: %v", zone["max_events"])
            try:
                events = atoi(d.val())
            except ValueError as exc:
                raise d.errf("invalid max events integer '%s': %v", d.val(), exc) from None
            if events:
                zone["max_events"] = events
    if not zone.get("window") or not zone.get("max_events"):
        raise d.err("a rate limit zone requires both a window and maximum events")
    return zone


def _distributed(d: Dispenser) -> dict:
    out: dict = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub not in ("read_interval", "write_interval"):
            continue
        if not d.next_arg():
            raise d.arg_err()
        what = sub.replace("_", " ")
        if out.get(sub):
            raise d.errf("%s already specified: %v", what, out[sub])
        interval = _duration(d, f"invalid {what} '%s': %v")
        if interval:
            out[sub] = interval
    return out
