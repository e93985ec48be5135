"""The `expression` request matcher (`http.matchers.expression`, modules/caddyhttp/celmatcher.go).

A named matcher whose first token is quoted (``@name `expr` ``) is an expression
matcher without its name; the Helper inserts the `expression` token before calling
this unmarshaler, as Caddy's `parseMatcherDefinitions` does.
"""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("expression")
def unmarshal_expression(d: Dispenser, name: str) -> str | dict:
    """Syntax::

        expression <cel expression...>

    Several tokens are joined raw (quotes kept, since they may be CEL string
    literals); a single token is taken unquoted and records the matcher's name, so
    regexp functions in the expression can name their captures after it.
    """
    d.next()
    if d.count_remaining_args() > 1:
        return " ".join(d.remaining_args_raw())
    if not d.next_arg():
        raise d.arg_err()
    expr = d.val()
    if not name:
        return expr
    return {"expr": expr, "name": name}
