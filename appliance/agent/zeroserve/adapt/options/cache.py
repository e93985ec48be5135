"""The `cache` global option of caddyserver/cache-handler: the plugin's `cache` app.

The plugin's parseCaddyfileGlobalOption (httpcache.go) runs the handler's own parser with
`api` allowed, over a DefaultCache whose `ttl` is 120 s and whose `headers` is `[]`, and
returns the SouinApp (app.go) as an `httpcaddyfile.App`. The app is marshalled with plain
`json.Marshal`, not through a map as modules are, so its keys keep the struct's order:
the embedded DefaultCache's fields, then the untagged `Storers`, `SurrogateStorage` and
`SurrogateKeyDisabled`, then `cache_keys` (omitempty), `api` and `log_level` (omitempty).
mholt/caddy-ratelimit, the other adapted plugin, registers no global option.
"""

from __future__ import annotations

import json
from typing import Any

from zeroserve.adapt.directives.cache import default_cache, parse_configuration
from zeroserve.adapt.registry import App, global_option
from zeroserve.caddyfile.dispenser import Dispenser


@global_option("cache")
def parse_opt_cache(d: Dispenser, existing: Any) -> App:
    """``cache { <the cache directive's subdirectives> api { ... } }``; a later one replaces
    an earlier one, as for every global option that is not folded."""
    dc = default_cache(headers=[], ttl="2m0s")
    config = parse_configuration(d, dc, is_global=True)
    app: dict[str, Any] = {
        **dc,
        "Storers": None,
        "SurrogateStorage": None,
        "SurrogateKeyDisabled": config["SurrogateKeyDisabled"],
    }
    if config["cache_keys"]:
        keys = _marshal_cache_keys(config["cache_keys"])
        if keys is None:
            # json.Marshal fails on CacheKeys' text and caddyconfig.JSON, given no warnings
            # list, returns a nil RawMessage: Caddy writes the whole app as null
            return App("cache", None)
        app["cache_keys"] = keys
    app["api"] = config["API"]
    if config["LogLevel"]:
        app["log_level"] = config["LogLevel"]
    return App("cache", app)


def _marshal_cache_keys(pairs: list[tuple[str, dict]]) -> dict | None:
    """souin's CacheKeys.MarshalJSON: it writes each regexp between quotes unescaped, so a
    regexp with a backslash JSON does not know (`\\d`) or a quote makes the text invalid."""
    text = "{" + ",".join(f'"{rg}": {json.dumps(key)}' for rg, key in pairs) + "}"
    try:
        keys = json.loads(text)
    except ValueError:
        return None
    return keys if isinstance(keys, dict) else None
