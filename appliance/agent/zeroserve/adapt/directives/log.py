"""The `log` directive and the logging modules it configures (builtins.go parseLogHelper).

Syntax::

    log [<logger_name>] {
        hostnames <hostnames...>
        no_hostname
        output <writer_module> ...
        format <encoder_module> ...
        sampling { interval <n>; first <n>; thereafter <n> }
        core <core_module> ...
        level <level>
    }

The global `log` option shares this parser (with `include`/`exclude`, without
`hostnames`). Writers: stdout, stderr, discard, file, net. Encoders: console,
json, filter, append, journald.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from zeroserve.adapt.helper import ConfigValue, Helper, NamedCustomLog
from zeroserve.adapt.registry import directive
from zeroserve.adapt.values import atoi, parse_bytes, parse_duration
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap, module_object, struct

DEFAULT_LOGGER_NAME = "default"


def _arg(d: Dispenser) -> str:
    if not d.next_arg():
        raise d.arg_err()
    return d.val()


def _duration(d: Dispenser, text: str, what: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise d.errf("parsing %s duration: %s", what, str(exc)) from None


# --- writers ------------------------------------------------------------------------


def _file_writer(d: Dispenser) -> dict[str, Any]:
    w: dict[str, Any] = {"filename": _arg(d)}
    if d.next_arg():
        raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "mode":
            w["mode"] = _arg(d)
        elif sub == "dir_mode":
            w["dir_mode"] = _arg(d)
        elif sub == "roll_disabled":
            w["roll"] = False
        elif sub == "roll_size":
            size = _arg(d)
            try:
                w["roll_size_mb"] = math.ceil(parse_bytes(size) / (1 << 20))
            except ValueError as exc:
                raise d.errf("parsing size: %s", str(exc)) from None
        elif sub == "roll_uncompressed":
            w["roll_gzip"] = False
        elif sub == "roll_compression":
            w["roll_compression"] = _arg(d)
        elif sub == "roll_local_time":
            w["roll_local_time"] = True
        elif sub == "roll_keep":
            try:
                w["roll_keep"] = atoi(_arg(d))
            except ValueError as exc:
                raise d.errf("parsing roll_keep number: %s", str(exc)) from None
        elif sub == "roll_keep_for":
            keep = _duration(d, _arg(d), "roll_keep_for")
            w["roll_keep_days"] = math.ceil(keep / 3_600_000_000_000 / 24)
        elif sub == "roll_interval":
            w["roll_interval"] = _duration(d, _arg(d), "roll_interval")
        elif sub == "roll_minutes":
            minutes = w.setdefault("roll_minutes", [])
            for arg in d.remaining_args():
                for part in re.split(r"[,\s]+", arg):
                    if part:
                        try:
                            minutes.append(atoi(part))
                        except ValueError as exc:
                            raise d.errf("parsing roll_minutes number: %s", str(exc)) from None
        elif sub == "roll_at":
            at = w.setdefault("roll_at", [])
            for arg in d.remaining_args():
                at.extend(p for p in re.split(r"[,\s]+", arg) if p)
        elif sub == "backup_time_format":
            w["backup_time_format"] = _arg(d)
        else:
            raise d.errf("unrecognized subdirective '%s'", sub)
    return w


def _net_writer(d: Dispenser) -> dict[str, Any]:
    w: dict[str, Any] = {"address": _arg(d)}
    if d.next_arg():
        raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "dial_timeout":
            w["dial_timeout"] = _duration(d, _arg(d), "dial_timeout")
        elif sub == "soft_start":
            if d.next_arg():
                raise d.arg_err()
            w["soft_start"] = True
        else:
            raise d.errf("unrecognized subdirective '%s'", sub)
    return w


def parse_writer(d: Dispenser) -> GoMap:
    name = _arg(d)
    if name in ("stdout", "stderr", "discard"):
        body: dict[str, Any] = {}
    elif name == "file":
        body = _file_writer(d)
    elif name == "net":
        body = _net_writer(d)
    else:
        raise d.errf(
            "getting module named 'caddy.logging.writers.%s': module not registered: "
            "caddy.logging.writers.%s",
            name,
            name,
        )
    return module_object(body, "output", name)


# --- encoders -----------------------------------------------------------------------

_ENCODER_KEYS = (
    "message_key",
    "level_key",
    "time_key",
    "name_key",
    "caller_key",
    "stacktrace_key",
    "line_ending",
    "time_format",
    "duration_format",
    "level_format",
)


def _log_encoder_config(d: Dispenser, body: dict[str, Any]) -> None:
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "time_local":
            body["time_local"] = True
            if d.next_arg():
                raise d.arg_err()
            continue
        if sub not in _ENCODER_KEYS:
            raise d.errf("unrecognized subdirective %s", sub)
        body[sub] = _arg(d)
        if d.next_arg():
            raise d.arg_err()


def _wrapped(d: Dispenser) -> GoMap:
    """The encoder named on the current line after `wrap`."""
    return parse_encoder(d)


def _filter(d: Dispenser) -> GoMap:
    name = _arg(d)
    body: dict[str, Any] = {}
    if name == "delete" or name == "hash":
        pass
    elif name == "replace":
        if d.next_arg():
            body["value"] = d.val()
    elif name == "rename":
        body["name"] = _arg(d)
    elif name == "ip_mask":
        args = d.remaining_args()
        for key, value in zip(("ipv4_cidr", "ipv6_cidr"), args, strict=False):
            body[key] = atoi(value)
        nesting = d.nesting()
        while d.next_block(nesting):
            sub = d.val()
            if sub not in ("ipv4", "ipv6"):
                raise d.errf("unrecognized subdirective %s", sub)
            try:
                body[sub + "_cidr"] = atoi(_arg(d))
            except ValueError as exc:
                raise d.errf("error parsing %s: %s", sub, str(exc)) from None
    elif name in ("query", "cookie"):
        key = "parameter" if name == "query" else "name"
        actions: list[dict[str, Any]] = []
        nesting = d.nesting()
        while d.next_block(nesting):
            kind = d.val()
            if kind not in ("replace", "delete", "hash"):
                raise d.errf("unrecognized subdirective %s", kind)
            action: dict[str, Any] = {key: _arg(d), "type": kind}
            if kind == "replace":
                action["value"] = _arg(d)
            if d.next_arg():
                raise d.arg_err()
            actions.append(action)
        if actions:
            body["actions"] = actions
    elif name == "regexp":
        body["regexp"] = _arg(d)
        body["value"] = _arg(d)
    else:
        raise d.errf(
            "getting module named 'caddy.logging.encoders.filter.%s': module not "
            "registered: caddy.logging.encoders.filter.%s",
            name,
            name,
        )
    return module_object(body, "filter", name)


def _encoder_fields(
    d: Dispenser, body: dict[str, Any], add_field: Callable[[dict[str, Any], str], None]
) -> None:
    """The block of the filter and append encoders: `wrap`, a `fields` block or one field."""
    fields = body.setdefault("fields", {})
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "wrap":
            body["wrap"] = _wrapped(d)
        elif sub == "fields":
            inner = d.nesting()
            while d.next_block(inner):
                add_field(fields, d.val())
        else:
            add_field(fields, sub)
    if not fields:
        del body["fields"]


def _filter_encoder(d: Dispenser, body: dict[str, Any]) -> None:
    _encoder_fields(d, body, lambda fields, name: _add_filter(fields, name, _filter(d)))


def _add_filter(fields: dict[str, Any], name: str, new: GoMap) -> None:
    """Several regexp filters on one field become one multi_regexp filter."""
    old = fields.get(name)
    if (
        old is not None
        and new.get("filter") == "regexp"
        and old.get("filter") in ("regexp", "multi_regexp")
    ):
        ops = old.get("operations") or [
            {"regexp": old.get("regexp", ""), "value": old.get("value", "")}
        ]
        ops.append({"regexp": new.get("regexp", ""), "value": new.get("value", "")})
        fields[name] = module_object({"operations": ops}, "filter", "multi_regexp")
        return
    fields[name] = new


def _append_encoder(d: Dispenser, body: dict[str, Any]) -> None:
    def add_field(fields: dict[str, Any], key: str) -> None:
        if not d.next_arg():
            raise d.arg_err()
        fields[key] = d.scalar()

    _encoder_fields(d, body, add_field)


def _journald_encoder(d: Dispenser, body: dict[str, Any]) -> None:
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "wrap":
            body["wrap"] = _wrapped(d)
        else:
            raise d.errf("unrecognized subdirective %s", sub)


def parse_encoder(d: Dispenser) -> GoMap:
    name = _arg(d)
    body: dict[str, Any] = {}
    if name in ("console", "json"):
        if d.next_arg():
            raise d.arg_err()
        _log_encoder_config(d, body)
    elif name == "filter":
        _filter_encoder(d, body)
    elif name == "append":
        _append_encoder(d, body)
    elif name == "journald":
        _journald_encoder(d, body)
    else:
        raise d.errf(
            "getting module named 'caddy.logging.encoders.%s': module not registered: "
            "caddy.logging.encoders.%s",
            name,
            name,
        )
    return module_object(body, "format", name)


# --- the directive ------------------------------------------------------------------

CUSTOM_LOG_KEYS = ("writer", "encoder", "core", "level", "sampling", "include", "exclude")


def _sampling(h: Helper) -> dict[str, Any]:
    d = h.new_from_next_segment()
    while d.next_arg():
        pass
    sampling: dict[str, Any] = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if not d.next_arg():
            raise d.arg_err()
        if sub == "interval":
            try:
                sampling["interval"] = parse_duration(d.val())
            except ValueError as exc:
                raise d.errf("failed to parse interval: %s", str(exc)) from None
        elif sub in ("first", "thereafter"):
            try:
                sampling[sub] = atoi(d.val())
            except ValueError as exc:
                raise d.errf("failed to parse %s: %s", sub, str(exc)) from None
        else:
            raise d.errf("unrecognized subdirective: %s", sub)
    return {k: sampling[k] for k in ("interval", "first", "thereafter") if sampling.get(k)}


def parse_log_helper(h: Helper, global_names: set[str] | None) -> list[ConfigValue]:
    """Shared by the `log` directive and (with `global_names`) the `log` global option."""
    h.next()
    as_global = global_names is not None
    log_name = ""
    if as_global:
        if h.next_arg():
            log_name = h.val()
            if h.next_arg():
                raise h.arg_err()
        else:
            log_name = DEFAULT_LOGGER_NAME
        if log_name in global_names:
            raise h.err("duplicate global log option for: " + log_name)
        global_names.add(log_name)
    elif h.next_arg():
        log_name = h.val()
        if h.next_arg():
            raise h.arg_err()

    cl: dict[str, Any] = {}
    hostnames: list[str] = []
    no_hostname = False
    while h.next_block(0):
        sub = h.val()
        if sub == "hostnames":
            if as_global:
                raise h.err("hostnames is not allowed in the log global options")
            args = h.remaining_args()
            if not args:
                raise h.arg_err()
            hostnames.extend(args)
        elif sub == "output":
            cl["writer"] = parse_writer(h.dispenser)
        elif sub == "sampling":
            cl["sampling"] = _sampling(h)
        elif sub == "core":
            name = _arg(h.dispenser)
            raise h.errf(
                "getting module named 'caddy.logging.cores.%s': module not registered: "
                "caddy.logging.cores.%s",
                name,
                name,
            )
        elif sub == "format":
            cl["encoder"] = parse_encoder(h.dispenser)
        elif sub == "level":
            cl["level"] = _arg(h.dispenser)
            if h.next_arg():
                raise h.arg_err()
        elif sub in ("include", "exclude"):
            if not as_global:
                raise h.err(f"{sub} is not allowed in the log directive")
            while h.next_arg():
                cl.setdefault(sub, []).append(h.val())
        elif sub == "no_hostname":
            if h.next_arg():
                raise h.arg_err()
            no_hostname = True
        else:
            raise h.errf("unrecognized subdirective: %s", sub)

    val = NamedCustomLog(hostnames=hostnames, no_hostname=no_hostname)
    empty = not cl
    if as_global:
        val.name = log_name
    else:
        if log_name:
            val.name = log_name
        elif not empty:
            counter = h.state.get("logCounter", 0)
            val.name = f"log{counter}"
            h.state["logCounter"] = counter + 1
        if val.name:
            cl["include"] = ["http.log.access." + val.name]
    if not empty:
        val.log = cl
    return [ConfigValue("custom_log", val)]


@directive("log")
def parse_log(h: Helper) -> list[ConfigValue]:
    return parse_log_helper(h, None)


def custom_log_json(cl: dict[str, Any]) -> dict[str, Any]:
    return struct(cl, CUSTOM_LOG_KEYS, keep=("sampling",))
