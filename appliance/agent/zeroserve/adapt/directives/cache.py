"""`cache`: the `cache` handler of the caddyserver/cache-handler plugin (Souin).

From that plugin's httpcache.go (handler struct, UnmarshalCaddyfile) and
configuration.go (parseConfiguration and the storage-specific conversions), with
the JSON shapes of darkweak/souin's configurationtypes (see docs/COMPATIBILITY.md,
"Plugins"). The directive fills only the handler's untagged `Configuration` field,
so the JSON carries that object plus the zero values of the handler's struct-typed
fields, as Go marshals them. The plugin orders the directive before `rewrite`, and so
does this module.
"""

from __future__ import annotations

import base64

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.order import register_directive_order
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import go_duration_string, go_parse_duration, parse_float
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.gofmt import go_atoi, go_parse_bool
from zeroserve.caddyjson import sorted_copy

_PROVIDERS = ("badger", "etcd", "nats", "nuts", "olric", "otter", "redis", "simplefs")
# which of url/path/configuration each storage accepts, and whether it is distributed
_PROVIDER_FIELDS = {
    "badger": (("path", "configuration"), False),
    "etcd": (("configuration",), True),
    "nats": (("url", "configuration"), False),
    "nuts": (("url", "path", "configuration"), False),
    "olric": (("url", "path", "configuration"), True),
    "otter": (("configuration",), False),
    "redis": (("url", "path", "configuration"), True),
    "simplefs": (("path", "configuration"), False),
}
_KEY_FLAGS = (
    "disable_body",
    "disable_host",
    "disable_method",
    "disable_query",
    "disable_scheme",
    "disable_vary",
    "hash",
    "hide",
)
# souin's Key and CDN structs, in field order (the app's JSON keeps it)
_KEY_FIELDS = (*_KEY_FLAGS, "template", "headers")
_CDN_FIELDS = (
    "api_key",
    "email",
    "hostname",
    "network",
    "provider",
    "strategy",
    "service_id",
    "zone_id",
)
# The CDN struct's order: the string directives, with the `dynamic` flag second.
_CDN_ORDER = (_CDN_FIELDS[0], "dynamic", *_CDN_FIELDS[1:])


def _provider(found: bool = False) -> dict:
    return {"found": found, "url": "", "path": "", "configuration": None}


def _timeout(backend: int = 0, cache: int = 0) -> dict:
    return {"backend": go_duration_string(backend), "cache": go_duration_string(cache)}


def _endpoint() -> dict:
    return {"basepath": "", "enable": False, "security": False}


register_directive_order("cache", "before", "rewrite")


@handler_directive("cache")
def parse_cache(h: Helper) -> dict:
    """Syntax::

    cache [<matcher>] {
        allowed_http_verbs <verbs...>
        allowed_additional_status_codes <codes...>
        badger|etcd|nats|nuts|olric|otter|redis|simplefs {
            url <url>
            path <path>
            configuration {
                <key> <value...>
            }
        }
        cache_keys {
            <regexp> {
                disable_body|disable_host|disable_method|disable_query
                disable_scheme|disable_vary|hash|hide
                template <template>
                headers <fields...>
            }
        }
        cache_name <name>
        cdn {
            api_key|email|hostname|network|provider|service_id|strategy|zone_id <v>
            dynamic [<bool>]
        }
        default_cache_control <value...>
        max_cacheable_body_bytes <n>
        headers <fields...>
        key { <same as a cache_keys entry> }
        log_level <level>
        mode <mode>
        regex {
            exclude <regexp>
        }
        stale <duration>
        storers <names...>
        timeout {
            backend <duration>
            cache <duration>
        }
        ttl <duration>
        disable_coalescing
        disable_surrogate_key
    }
    """
    config = parse_configuration(h.dispenser, default_cache(), is_global=False)
    # a handler's CacheKeys marshal through a map, so a repeated regexp keeps its last key
    config["cache_keys"] = dict(config["cache_keys"])
    return {
        "handler": "cache",
        "Configuration": config,
        # the handler's own struct-typed fields: Go's omitempty never drops a struct
        **{name: _provider() for name in _PROVIDERS},
        "key": {},
        "timeout": _timeout(),
        "ttl": "0s",
        "stale": "0s",
    }


def default_cache(**values: object) -> dict:
    """The plugin's DefaultCache with zero values (or `values`), in its struct's field order.

    The handler's JSON comes out sorted, but the `cache` app is marshalled straight from
    the struct, so this order is the app's.
    """
    dc: dict = {
        "allowed_http_verbs": [],
        "allowed_additional_status_codes": None,
        "badger": _provider(),
        "cache_name": "",
        "cdn": {},
        "default_cache_control": "",
        "max_cacheable_body_bytes": 0,
        "distributed": False,
        "headers": None,
        "key": {},
        "mode": "",
        "olric": _provider(),
        "redis": _provider(),
        "etcd": _provider(),
        "nats": _provider(),
        "nuts": _provider(),
        "otter": _provider(),
        "regex": {"exclude": ""},
        "storers": None,
        "timeout": _timeout(),
        "ttl": "0s",
        "simplefs": _provider(),
        "stale": "0s",
        "disable_coalescing": False,
    }
    dc.update(values)
    return dc


def parse_configuration(d: Dispenser, dc: dict, is_global: bool) -> dict:
    """The plugin's parseConfiguration, shared by the handler and the global option.

    Fills `dc` (a DefaultCache) and returns the plugin's Configuration around it, with
    `cache_keys` as a list of (regexp, key) pairs in the order written.
    """
    config: dict = {
        "DefaultCache": dc,
        "API": _api(),
        "cache_keys": [],
        "URLs": None,
        "LogLevel": "",
        "SurrogateKeys": None,
        "SurrogateKeyDisabled": False,
    }
    while d.next():
        nesting = d.nesting()
        while d.next_block(nesting):
            option = d.val()
            if option == "allowed_http_verbs":
                dc["allowed_http_verbs"] = dc["allowed_http_verbs"] + d.remaining_args()
            elif option == "allowed_additional_status_codes":
                codes = [c for c in map(go_atoi, d.remaining_args()) if c is not None]
                dc["allowed_additional_status_codes"] = (
                    dc["allowed_additional_status_codes"] or []
                ) + codes
            elif option == "api":
                if not is_global:
                    raise d.err("'api' block must be global")
                config["API"] = _parse_api(d)
            elif option in _PROVIDERS:
                fields, distributed = _PROVIDER_FIELDS[option]
                if distributed:
                    dc["distributed"] = True
                dc[option] = _parse_provider(d, option, fields)
            elif option == "cache_keys":
                nesting2 = d.nesting()
                while d.next_block(nesting2):
                    pattern = d.val()
                    config["cache_keys"].append((pattern, _parse_key(d, f"cache_keys ({pattern})")))
            elif option == "cache_name":
                dc["cache_name"] = _first_arg(d)
            elif option == "cdn":
                dc["cdn"] = _parse_cdn(d)
            elif option == "default_cache_control":
                dc["default_cache_control"] = " ".join(d.remaining_args())
            elif option == "max_cacheable_body_bytes":
                args = d.remaining_args()
                value = go_atoi(args[0]) if args else None
                if value is None or value < 0 or args[0].startswith(("+", "-")):
                    raise d.errf("unsupported max_cacheable_body_bytes: %s", args)
                dc["max_cacheable_body_bytes"] = value
            elif option == "headers":
                dc["headers"] = (dc["headers"] or []) + d.remaining_args()
            elif option == "key":
                dc["key"] = _parse_key(d, "key")
            elif option == "log_level":
                config["LogLevel"] = _first_arg(d)
            elif option == "mode":
                args = d.remaining_args()
                if len(args) > 1:
                    raise d.errf("mode must contains only one arg: %s given", args)
                if not args:
                    raise d.arg_err()
                dc["mode"] = args[0]
            elif option == "regex":
                nesting2 = d.nesting()
                while d.next_block(nesting2):
                    if d.val() != "exclude":
                        raise d.errf("unsupported regex directive: %s", d.val())
                    dc["regex"]["exclude"] = _first_arg(d)
            elif option in ("stale", "ttl"):
                dc[option] = _duration(_first_arg(d), dc[option])
            elif option == "storers":
                dc["storers"] = d.remaining_args()
            elif option == "timeout":
                dc["timeout"] = _parse_timeout(d)
            elif option == "disable_coalescing":
                dc["disable_coalescing"] = True
            elif option == "disable_surrogate_key":
                config["SurrogateKeyDisabled"] = True
            else:
                raise d.errf("unsupported root directive: %s", option)
    return config


def _api() -> dict:
    return {
        "basepath": "",
        "debug": _endpoint(),
        "prometheus": _endpoint(),
        "souin": _endpoint(),
        "security": {"basepath": "", "enable": False, "secret": "", "users": None},
    }


def _parse_api(d: Dispenser) -> dict:
    # a new API each time: a second `api` block replaces the first
    api = _api()
    nesting = d.nesting()
    while d.next_block(nesting):
        directive = d.val()
        if directive == "basepath":
            api["basepath"] = _first_arg(d)
        elif directive in ("debug", "prometheus", "souin"):
            endpoint = api[directive] = {**_endpoint(), "enable": True}
            nesting2 = d.nesting()
            while d.next_block(nesting2):
                if d.val() != "basepath":
                    raise d.errf("unsupported %s directive: %s", directive, d.val())
                endpoint["basepath"] = _first_arg(d)
        else:
            raise d.errf("unsupported api directive: %s", directive)
    return api


def _first_arg(d: Dispenser) -> str:
    # the plugin indexes args[0] unchecked (a panic in Go); we report it instead
    args = d.remaining_args()
    if not args:
        raise d.arg_err()
    return args[0]


def _duration(text: str, current: str) -> str:
    # the plugin ignores values time.ParseDuration rejects
    try:
        return go_duration_string(go_parse_duration(text))
    except ValueError:
        return current


def _parse_timeout(d: Dispenser) -> dict:
    timeout = _timeout()
    nesting = d.nesting()
    while d.next_block(nesting):
        which = d.val()
        if which not in ("backend", "cache"):
            raise d.errf("unsupported timeout directive: %s", which)
        timeout[which] = _duration(_first_arg(d), "0s")
    return timeout


def _parse_key(d: Dispenser, what: str) -> dict:
    key: dict = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        directive = d.val()
        if directive in _KEY_FLAGS:
            key[directive] = True
        elif directive == "template":
            key["template"] = _first_arg(d)
        elif directive == "headers":
            headers = d.remaining_args()
            if headers:
                key["headers"] = headers
            else:
                key.pop("headers", None)
        else:
            raise d.errf("unsupported %s directive: %s", what, directive)
    return {name: key[name] for name in _KEY_FIELDS if name in key}


def _parse_cdn(d: Dispenser) -> dict:
    cdn: dict = {"dynamic": True}
    nesting = d.nesting()
    while d.next_block(nesting):
        directive = d.val()
        if directive == "dynamic":
            args = d.remaining_args()
            cdn["dynamic"] = bool(go_parse_bool(args[0])) if args else True
        elif directive in _CDN_FIELDS:
            cdn[directive] = _first_arg(d)
        else:
            raise d.errf("unsupported cdn directive: %s", directive)
    return {k: cdn[k] for k in _CDN_ORDER if cdn.get(k)}


def _parse_provider(d: Dispenser, name: str, fields: tuple[str, ...]) -> dict:
    provider = _provider(found=True)
    nesting = d.nesting()
    while d.next_block(nesting):
        directive = d.val()
        if directive not in fields:
            raise d.errf("unsupported %s directive: %s", name, directive)
        if directive == "configuration":
            values = _parse_recursively(d)
            convert = _CONVERSIONS.get(name)
            # a Go map: its keys come out sorted, in the app's JSON as in the handler's
            provider["configuration"] = sorted_copy(convert(values) if convert else values)
        else:
            provider[directive] = _first_arg(d)
    return provider


def _parse_recursively(d: Dispenser) -> dict:
    """The plugin's parseCaddyfileRecursively: one value, a list, or a nested block."""
    values: dict = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        name = d.val()
        if name in ("{", "}"):
            continue
        args = d.remaining_args()
        if len(args) == 1:
            values[name] = args[0]
        elif args:
            values[name] = args
        else:
            values[name] = _parse_recursively(d)
    return values


def _int_or_zero(value: object) -> int:
    if value is True:
        return 1
    if value is False:
        return 0
    number = go_atoi(value) if isinstance(value, str) else None
    return number if number is not None else 0


def _convert_badger(c: dict) -> dict:
    for k, v in list(c.items()):
        if k in (
            "SyncWrites",
            "ReadOnly",
            "InMemory",
            "MetricsEnabled",
            "CompactL0OnClose",
            "LmaxCompaction",
            "VerifyValueChecksum",
            "BypassLockGuard",
            "DetectConflicts",
        ):
            c[k] = bool(go_parse_bool(v)) if isinstance(v, str) else True
        elif k in (
            "NumVersionsToKeep",
            "NumGoroutines",
            "MemTableSize",
            "BaseTableSize",
            "BaseLevelSize",
            "LevelSizeMultiplier",
            "TableSizeMultiplier",
            "MaxLevels",
            "ValueThreshold",
            "NumMemtables",
            "BlockSize",
            "BlockCacheSize",
            "IndexCacheSize",
            "NumLevelZeroTables",
            "NumLevelZeroTablesStall",
            "ValueLogFileSize",
            "NumCompactors",
            "ZSTDCompressionLevel",
            "ChecksumVerificationMode",
            "NamespaceOffset",
        ):
            c[k] = _int_or_zero(v)
        elif k in ("Compression", "ValueLogMaxEntries"):
            number = _int_or_zero(v)
            c[k] = number if 0 <= number < 1 << 32 else 0
        elif k in ("VLogPercentile", "BloomFalsePositive"):
            try:
                c[k] = parse_float(v) if isinstance(v, str) else 0
            except ValueError:
                c[k] = 0
        elif k == "EncryptionKey" and isinstance(v, str):
            # a Go []byte is marshalled as base64
            c[k] = base64.b64encode(v.encode()).decode()
        elif k == "EncryptionKeyRotationDuration":
            c[k] = _ns(v)
    return c


def _ns(value: object) -> int:
    try:
        return go_parse_duration(value) if isinstance(value, str) else 0
    except ValueError:
        return 0


_TLS_VERSIONS = {
    "0x0300": 0x0300,
    "SSLv3": 0x0300,
    "0x0301": 0x0301,
    "1.0": 0x0301,
    "0x0302": 0x0302,
    "1.1": 0x0302,
    "0x0303": 0x0303,
    "1.2": 0x0303,
    "0x0304": 0x0304,
    "1.3": 0x0304,
}


def _convert_redis(c: dict) -> dict:
    for k, v in list(c.items()):
        if k in ("Addrs", "InitAddress"):
            c[k] = [v] if isinstance(v, str) else v
        elif k in (
            "SendToReplicas",
            "ShuffleInit",
            "ClientNoTouch",
            "DisableRetry",
            "DisableCache",
            "AlwaysPipelining",
            "AlwaysRESP2",
            "ForceSingleClient",
            "ReplicaOnly",
            "ClientNoEvict",
            "ContextTimeoutEnabled",
            "PoolFIFO",
            "ReadOnly",
            "RouteByLatency",
            "RouteRandomly",
            "DisableIndentity",
        ):
            c[k] = True
        elif k in (
            "SelectDB",
            "CacheSizeEachConn",
            "RingScaleEachConn",
            "ReadBufferEachConn",
            "WriteBufferEachConn",
            "BlockingPoolSize",
            "PipelineMultiplex",
            "DB",
            "Protocol",
            "MaxRetries",
            "PoolSize",
            "MinIdleConns",
            "MaxIdleConns",
            "MaxActiveConns",
            "MaxRedirects",
        ):
            c[k] = _int_or_zero(v)
        elif k in (
            "ConnWriteTimeout",
            "MaxFlushDelay",
            "MinRetryBackoff",
            "MaxRetryBackoff",
            "DialTimeout",
            "ReadTimeout",
            "WriteTimeout",
            "PoolTimeout",
            "ConnMaxIdleTime",
            "ConnMaxLifetime",
        ):
            c[k] = _ns(v)
        elif k in ("MaxVersion", "MinVersion"):
            text = v if isinstance(v, str) else ""
            if text.startswith("TLS"):
                text = text[3:].strip(" ")
            if text in _TLS_VERSIONS:
                c[k] = _TLS_VERSIONS[text]
        elif k == "TLSConfig" and isinstance(v, dict):
            c[k] = _convert_redis(v)
    return c


def _convert_simplefs(c: dict) -> dict:
    for k, v in list(c.items()):
        if k in ("size", "directory_size"):
            c[k] = _int_or_zero(v)
    return c


_CONVERSIONS = {"badger": _convert_badger, "redis": _convert_redis, "simplefs": _convert_simplefs}
