"""Caddy's JSON config as plain Python data, and its byte-exact encoding.

The adapter builds configs from dicts (Go structs: keys kept in insertion order,
which must be the struct's field order), `GoMap`s (Go maps: keys sorted when
encoded), lists, str, int, float, bool and None. `encode()` turns that into the
bytes Go's encoding/json would produce.
"""

from zeroserve.caddyjson.encode import encode
from zeroserve.caddyjson.model import GoMap, module_object, sorted_copy, struct

__all__ = ["GoMap", "encode", "module_object", "sorted_copy", "struct"]
