"""`file_server` and `try_files` (modules/caddyhttp/fileserver/caddyfile.go)."""

from __future__ import annotations

import os.path
import re

from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.matchers.file import file_matcher
from zeroserve.adapt.registry import directive, handler_directive
from zeroserve.adapt.values import atoi, weak_string
from zeroserve.caddyjson import GoMap

_SORT_OPTIONS = ("name", "namedirfirst", "size", "time", "asc", "desc")
_PRECOMPRESSED = ("br", "gzip", "zstd")
_TRY_POLICIES = (
    "first_exist",
    "first_exist_fallback",
    "largest_size",
    "smallest_size",
    "most_recently_modified",
)


@handler_directive("file_server")
def parse_file_server(h: Helper) -> dict:
    """Syntax::

        file_server [<matcher>] [browse] {
            fs            <filesystem>
            root          <path>
            hide          <files...>
            index         <files...>
            browse        [<template_file>] {
                reveal_symlinks
                sort       <options...>
                file_limit <n>
            }
            precompressed [<formats...>]
            status        <status>
            disable_canonical_uris
            pass_thru
            etag_file_extensions <extensions...>
        }

    The Caddyfile(s) the site came from are always added to `hide`.
    """
    h.next()
    out: dict = {"handler": "file_server"}
    args = h.remaining_args()
    if len(args) > 1 or (args and args[0] != "browse"):
        raise h.arg_err()
    if args:
        out["browse"] = {}
    hide: list[str] = []
    nesting = h.nesting()
    while h.next_block(nesting):
        sub = h.val()
        if sub == "fs":
            if not h.next_arg():
                raise h.arg_err()
            if out.get("fs"):
                raise h.err("file system already specified")
            _put(out, "fs", h.val())
        elif sub == "hide":
            names = h.remaining_args()
            if not names:
                raise h.arg_err()
            hide += names
        elif sub == "index":
            names = h.remaining_args()
            if not names:
                raise h.arg_err()
            out["index_names"] = names
        elif sub == "root":
            if not h.next_arg():
                raise h.arg_err()
            _put(out, "root", h.val())
        elif sub == "browse":
            if "browse" in out:
                raise h.err("browsing is already configured")
            out["browse"] = _browse(h)
        elif sub == "precompressed":
            order = h.remaining_args() or ["br", "zstd", "gzip"]
            precompressed = out.setdefault("precompressed", GoMap())
            for fmt in order:
                if fmt not in _PRECOMPRESSED:
                    module_id = f"http.precompressed.{fmt}"
                    raise h.errf(
                        "getting module named '%s': module not registered: %s", module_id, module_id
                    )
                precompressed[fmt] = {}
            out["precompressed_order"] = order
        elif sub == "status":
            if not h.next_arg():
                raise h.arg_err()
            _put(out, "status_code", h.val() and weak_string(h.val()))
        elif sub == "disable_canonical_uris":
            if h.next_arg():
                raise h.arg_err()
            out["canonical_uris"] = False
        elif sub == "pass_thru":
            if h.next_arg():
                raise h.arg_err()
            out["pass_thru"] = True
        elif sub == "etag_file_extensions":
            extensions = h.remaining_args()
            if not extensions:
                raise h.arg_err()
            out["etag_file_extensions"] = extensions
        else:
            raise h.errf("unknown subdirective '%s'", sub)

    # hide the site's own Caddyfile(s); a bare name would hide every file so named
    for name in h.caddyfiles():
        name = os.path.normpath(name)
        if not _file_hidden(name, hide):
            hide.append(name if "/" in name else "./" + name)
    if hide:
        out["hide"] = hide
    return out


def _put(out: dict, key: str, value: object) -> None:
    # Go's omitempty (a status code of 0 is kept: WeakString "0" is not empty)
    if value == "" or value is None:
        out.pop(key, None)
    else:
        out[key] = value


def _browse(h: Helper) -> dict:
    browse: dict = {}
    if h.next_arg() and h.val():
        browse["template_file"] = h.val()
    nesting = h.nesting()
    while h.next_block(nesting):
        sub = h.val()
        if sub == "reveal_symlinks":
            if browse.get("reveal_symlinks"):
                raise h.err("Symlinks path reveal is already enabled")
            browse["reveal_symlinks"] = True
        elif sub == "sort":
            while h.next_arg():
                if h.val() not in _SORT_OPTIONS:
                    raise h.errf("unknown sort option '%s'", h.val())
                browse.setdefault("sort", []).append(h.val())
        elif sub == "file_limit":
            limit_args = h.remaining_args()
            try:
                if len(limit_args) != 1:
                    raise ValueError
                limit = atoi(limit_args[0])
            except ValueError:
                raise h.err("file_limit should have an integer value") from None
            if browse.get("file_limit"):
                raise h.err("file_limit is already enabled")
            if limit:
                browse["file_limit"] = limit
        else:
            raise h.errf("unknown subdirective '%s'", sub)
    return browse


def _file_hidden(name: str, hide: list[str]) -> bool:
    """Caddy's fileHidden: whether `name` is already covered by a `hide` entry."""
    for pattern in hide:
        if "/" not in pattern:
            # a bare name hides that name in any path component
            if any(_go_match(pattern, part) for part in name.split("/")):
                return True
        elif name.startswith(pattern) and name[len(pattern) :].startswith("/"):
            return True
        if _go_match(pattern, name):
            return True
    return False


def _go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match on '/'-separated paths; a malformed pattern matches nothing."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.fullmatch("".join(out), name) is not None
    except re.error:
        return False


@directive("try_files")
def parse_try_files(h: Helper) -> list[ConfigValue]:
    """Syntax::

        try_files <files...> {
            policy <policy>
        }

    with policy first_exist, first_exist_fallback, smallest_size, largest_size or
    most_recently_modified.
    Shorthand for a `file` matcher that tries the files plus a rewrite to the one
    found. A file with a query string gets its own route, whose rewrite carries
    that query; the routes form one group so only the first match rewrites.
    """
    if not h.next():
        raise h.arg_err()
    try_files = h.remaining_args()
    if not try_files:
        raise h.arg_err()
    policy = ""
    while h.next_block(0):
        if h.val() == "policy":
            if policy:
                raise h.err("try policy already configured")
            if not h.next_arg():
                raise h.arg_err()
            policy = h.val()
            if policy not in _TRY_POLICIES:
                raise h.errf("unrecognized try policy: %s", policy)

    def route(files: list[str], query: str) -> list[ConfigValue]:
        matcher_set = GoMap(file=file_matcher(try_files=files, try_policy=policy))
        return h.new_route(
            matcher_set, {"handler": "rewrite", "uri": "{http.matchers.file.relative}" + query}
        )

    result: list[ConfigValue] = []
    pending: list[str] = []
    for item in try_files:
        idx = item.find("?")
        if idx >= 0:
            if pending:
                result += route(pending, "")
                pending = []
            result += route([item[:idx]], item[idx:])
            continue
        pending.append(item)
    if pending:
        result += route(pending, "")
    h.group_routes(result)
    return result
