"""Site-level helpers that set variables: root, fs, log_skip/skip_log, log_name (builtins.go)."""

from __future__ import annotations

from zeroserve.adapt.adaptlog import deprecated_name
from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.registry import directive, handler_directive


@directive("root")
def parse_root(h: Helper) -> list[ConfigValue]:
    """Syntax: ``root [<matcher>] <path>``."""
    h.next()
    count = h.count_remaining_args()
    if count == 0:
        raise h.err("too few arguments; must have at least a root path")
    if count > 2:
        raise h.err("too many arguments; should only be a matcher and a path")
    if count == 1:
        if not h.next_arg():
            raise h.arg_err()
        return h.new_route(None, {"handler": "vars", "root": h.val()})
    matcher_set = h.extract_matcher_set()
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    return h.new_route(matcher_set, {"handler": "vars", "root": h.val()})


@handler_directive("fs")
def parse_fs(h: Helper) -> dict:
    """Syntax: ``fs [<matcher>] <filesystem>``."""
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    name = h.val()
    if h.next_arg():
        raise h.arg_err()
    return {"handler": "vars", "fs": name}


@handler_directive("log_skip", "skip_log")
def parse_log_skip(h: Helper) -> dict:
    """Syntax: ``log_skip [<matcher>]`` (`skip_log` is the deprecated name)."""
    h.next()
    if h.val() == "skip_log":
        deprecated_name("skip_log", "log_skip")
    if h.next_arg():
        raise h.arg_err()
    return {"handler": "vars", "log_skip": True}


@handler_directive("log_name")
def parse_log_name(h: Helper) -> dict:
    """Syntax: ``log_name [<matcher>] <names...>``."""
    h.next()
    return {"handler": "vars", "access_logger_names": h.remaining_args()}


@handler_directive("log_append")
def parse_log_append(h: Helper) -> dict:
    """Syntax: ``log_append [<matcher>] [<]<key> <value>`` (`<` = evaluate early)."""
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    key = h.val()
    if not h.next_arg():
        raise h.arg_err()
    value = h.val()
    if h.next_arg():
        raise h.arg_err()
    handler = {"handler": "log_append", "key": key, "value": value}
    if key.startswith("<"):
        handler["key"] = key[1:]
        handler["early"] = True
    return handler
