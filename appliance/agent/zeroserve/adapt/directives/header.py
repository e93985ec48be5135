"""`header` and `request_header`: the `headers` handler (modules/caddyhttp/headers/caddyfile.go).

`HeaderOps` and `apply_header_op` are shared with `reverse_proxy` (header_up,
header_down) and `push` (headers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.matchers.response import parse_named_response_matcher
from zeroserve.adapt.registry import directive
from zeroserve.adapt.values import canonical_header_key
from zeroserve.caddyjson import GoMap


@dataclass
class HeaderOps:
    """Caddy's `headers.HeaderOps` while it is being filled."""

    add: GoMap = field(default_factory=GoMap)
    set: GoMap = field(default_factory=GoMap)
    delete: list[str] = field(default_factory=list)
    replace: GoMap = field(default_factory=GoMap)

    def to_json(self) -> dict:
        out: dict = {}
        if self.add:
            out["add"] = self.add
        if self.set:
            out["set"] = self.set
        if self.delete:
            out["delete"] = self.delete
        if self.replace:
            out["replace"] = self.replace
        return out


@dataclass
class RespHeaderOps:
    """Caddy's `headers.RespHeaderOps`: HeaderOps plus a response matcher and deferral."""

    ops: HeaderOps = field(default_factory=HeaderOps)
    require: dict | None = None
    deferred: bool = False

    def to_json(self) -> dict:
        out = self.ops.to_json()
        if self.require is not None:
            out["require"] = self.require
        if self.deferred:
            out["deferred"] = True
        return out

    def is_empty(self) -> bool:
        return self == RespHeaderOps()


def apply_header_op(
    ops: HeaderOps, resp: RespHeaderOps | None, name: str, value: str, replacement: str | None
) -> str | None:
    """One header operation; returns an error message, or None.

    `+f v` adds, `-f` deletes, `?f v` sets a default (response only), `>f v` sets
    deferred, `f v` sets; with a replacement, `v` is a regexp to substitute.
    """
    if name.startswith("+"):
        ops.add.setdefault(canonical_header_key(name[1:]), []).append(value)
    elif name.startswith("-"):
        ops.delete.append(name[1:])
        if resp is not None:
            resp.deferred = True
    elif name.startswith("?"):
        if resp is None:
            return (
                f"{name}: the default header modifier ('?') can only be used on response "
                "headers; for conditional manipulation of request headers, use matchers"
            )
        if resp.require is None:
            resp.require = {"headers": GoMap()}
        name = name[1:]
        resp.require["headers"][name] = None
        resp.ops.set[canonical_header_key(name)] = [value]
    elif replacement is not None:
        if name.startswith(">") and resp is not None:
            resp.deferred = True
        name = name.lstrip("+-?>")
        # Replacement's fields are all omitempty
        ops.replace.setdefault(name, []).append(
            {k: v for k, v in (("search_regexp", value), ("replace", replacement)) if v}
        )
    elif name.startswith(">"):
        ops.set[canonical_header_key(name[1:])] = [value]
        if resp is not None:
            resp.deferred = True
    else:
        ops.set[canonical_header_key(name)] = [value]
    return None


def _field_value_replacement(h: Helper) -> tuple[str, str | None]:
    value = h.val() if h.next_arg() else ""
    replacement = h.val() if h.next_arg() else None
    return value, replacement


@directive("header")
def parse_header(h: Helper) -> list[ConfigValue]:
    """Syntax::

        header [<matcher>] [[+|-|?|>]<field> [<value|regexp>] [<replacement>]] {
            [+]<field> [<value|regexp> [<replacement>]]
            ?<field> <default_value>
            -<field>
            ><field>
            [defer]
            match <response matchers...>
        }

    Either one operation on the first line or a block of them. Deleting a field
    (or `>`) defers the operations until the response is written; `?` operations
    go to a second handler that requires the field to be absent.
    """
    h.next()
    matcher_set = h.extract_matcher_set()
    h.next()
    handler, with_require = RespHeaderOps(), RespHeaderOps()

    has_args = False
    if h.next_arg():
        has_args = True
        name = h.val()
        value, replacement = _field_value_replacement(h)
        problem = apply_header_op(handler.ops, handler, name, value, replacement)
        if problem:
            raise h.err(problem)
        if handler.ops.delete:
            handler.deferred = True

    while h.next_block(0):
        name = h.val()
        if name == "defer":
            handler.deferred = True
            continue
        if name == "match":
            matchers: dict[str, dict] = {}
            parse_named_response_matcher(h.new_from_next_segment(), matchers)
            handler.require = matchers["match"]
            continue
        if has_args:
            raise h.err("cannot specify headers in both arguments and block")
        # a habitual trailing colon, as in curl's -H "Field: value"
        name = name.removesuffix(":")
        value, replacement = _field_value_replacement(h)
        target = with_require if name.startswith("?") else handler
        problem = apply_header_op(target.ops, target, name, value, replacement)
        if problem:
            raise h.err(problem)

    values: list[ConfigValue] = []
    for ops in (handler, with_require):
        if not ops.is_empty():
            values += h.new_route(matcher_set, {"handler": "headers", "response": ops.to_json()})
    return values


@directive("request_header")
def parse_request_header(h: Helper) -> list[ConfigValue]:
    """Syntax::

    request_header [<matcher>] [+|-]<field> [<value|regexp>] [<replacement>]
    """
    h.next()
    matcher_set = h.extract_matcher_set()
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    name = h.val().removesuffix(":")
    value = h.val() if h.next_arg() else ""
    replacement = None
    if h.next_arg():
        replacement = h.val()
        if h.next_arg():
            raise h.arg_err()
    ops = HeaderOps()
    problem = apply_header_op(ops, None, name, value, replacement)
    if problem:
        raise h.err(problem)
    values = h.new_route(matcher_set, {"handler": "headers", "request": ops.to_json()})
    if h.next_arg():
        raise h.arg_err()
    return values
