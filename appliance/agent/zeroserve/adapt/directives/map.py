"""`map`: the `map` handler (modules/caddyhttp/map/caddyfile.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.shorthands import was_replaced_placeholder_shorthand
from zeroserve.adapt.values import omit_empty


@handler_directive("map")
def parse_map(h: Helper) -> dict:
    """Syntax::

        map [<matcher>] <source> <destinations...> {
            [~]<input> <outputs...>
            default    <defaults...>
        }

    `~` makes the input a regexp; an output `-` is null (falls back to the default);
    missing outputs are filled with nulls, missing defaults with empty strings.
    """
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    source = h.val()
    destinations = h.remaining_args()
    if not destinations:
        raise h.err("missing destination argument(s)")
    for dest in destinations:
        shorthand = was_replaced_placeholder_shorthand(dest)
        if shorthand:
            raise h.errf(
                "destination %s conflicts with a Caddyfile placeholder shorthand", shorthand
            )
    mappings: list[dict] = []
    defaults: list[str] = []
    while h.next_block(0):
        if h.val() == "default":
            if defaults:
                raise h.err("defaults already defined")
            defaults = h.remaining_args()
            defaults += [""] * (len(destinations) - len(defaults))
            continue
        given = h.val()
        outputs: list = []
        while h.next_arg():
            value = h.scalar()
            outputs.append(None if value == "-" else value)
        if len(outputs) > len(destinations):
            raise h.err("too many outputs")
        outputs += [None] * (len(destinations) - len(outputs))
        mapping: dict = {}
        if given.startswith("~"):
            if given[1:]:
                mapping["input_regexp"] = given[1:]
        elif given:
            mapping["input"] = given
        mapping["outputs"] = outputs
        mappings.append(mapping)
    optional = omit_empty({"source": source, "mappings": mappings, "defaults": defaults})
    return {"handler": "map", "destinations": destinations, **optional}
