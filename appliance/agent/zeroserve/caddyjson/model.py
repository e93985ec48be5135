"""The two object kinds of Go's encoding/json: structs (ordered) and maps (sorted)."""

from __future__ import annotations

from typing import Any


class GoMap(dict):
    """A JSON object that Go encodes from a map: keys come out sorted, whatever the insertion."""


class ModuleObject(GoMap):
    """A module's JSON as `module_object` made it: Caddy's `json.RawMessage`, final once made.

    Everything inside is already sorted and converted, so `sorted_copy` shares it instead
    of copying it again: copying each handler anew at every subroute level that wraps it
    made adapting cost the nesting depth times the size. Like the RawMessage, it is not to
    be changed once made.
    """


def sorted_copy(value: Any) -> Any:
    """Deep copy of `value` with every object turned into a GoMap.

    Caddy builds module objects (handlers, matchers, storage, ...) by marshalling
    the struct, decoding it into `map[string]any` and marshalling again, so every
    object nested in one comes out with sorted keys.
    """
    if isinstance(value, str):  # most values are, so they are asked about first
        return value
    if isinstance(value, dict):
        if type(value) is ModuleObject:
            return value
        return GoMap((k, sorted_copy(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [sorted_copy(v) for v in value]
    # the decode step turns every number into a float64, which rounds integers beyond 2**53
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 53:
        return float(value)
    return value


def module_object(value: dict, field: str, name: str) -> ModuleObject:
    """Caddy's `caddyconfig.JSONModuleObject`: `value` plus its module-name field, sorted."""
    obj = ModuleObject((k, sorted_copy(v)) for k, v in value.items())
    obj[field] = name
    return obj


def struct(obj: dict, keys: tuple[str, ...], keep: tuple[str, ...] = ()) -> dict:
    """A Go struct's JSON: `obj`'s fields in declaration order (`keys`), omitempty applied.

    Fields in `keep` are pointers in Go: present whenever set (not None), even if false
    or empty.
    """
    out = {}
    for k in keys:
        if k not in obj or obj[k] is None:
            continue
        v = obj[k]
        empty = (
            v is False
            or v == ""
            or (isinstance(v, int | float) and v == 0)
            or (isinstance(v, list | dict) and not v)
        )
        if empty and k not in keep:
            continue
        out[k] = v
    return out
