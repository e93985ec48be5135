"""Response interception shared by `reverse_proxy` and `intercept`.

Both accept named response matchers (`@name status ...`), `replace_status` and
`handle_response` blocks; the blocks are parsed as subroutes only at the end,
once the Helper is at hand (Caddy's FinalizeUnmarshalCaddyfile). The result is a
list of `caddyhttp.ResponseHandler` objects: match, status_code, routes.
"""

from __future__ import annotations

from zeroserve.adapt.helper import Helper, parse_segment_as_subroute
from zeroserve.adapt.matchers.response import parse_named_response_matcher
from zeroserve.adapt.values import weak_string
from zeroserve.caddyfile.dispenser import Dispenser


class ResponseHandling:
    """The response matchers and handlers collected from one directive's block."""

    def __init__(self) -> None:
        self.matchers: dict[str, dict] = {}
        self.handlers: list[dict] = []
        self._segments: list[Dispenser] = []

    def parse(self, d: Dispenser) -> bool:
        """Consume the current subdirective if it is one of ours; False if it is not."""
        name = d.val()
        if name.startswith("@"):
            parse_named_response_matcher(d.new_from_next_segment(), self.matchers)
        elif name == "handle_response":
            # parsed in finalize(), which has the Helper needed for subroutes
            self._segments.append(d.new_from_next_segment())
        elif name == "replace_status":
            self._replace_status(d)
        else:
            return False
        return True

    def _replace_status(self, d: Dispenser) -> None:
        """Syntax::

        replace_status [<matcher>] <status_code>
        """
        args = d.remaining_args()
        if len(args) not in (1, 2):
            raise d.errf(
                "must have one or two arguments: an optional response matcher, and a status code"
            )
        handler: dict = {}
        if len(args) == 2:
            handler["match"] = self._matcher(d, args[0])
        if args[-1]:
            handler["status_code"] = weak_string(args[-1])
        if d.next_block(d.nesting()):
            raise d.errf(
                "cannot define routes for 'replace_status', use 'handle_response' instead."
            )
        self.handlers.append(handler)

    def _matcher(self, d: Dispenser, name: str) -> dict:
        if not name.startswith("@"):
            raise d.errf("must use a named response matcher, starting with '@'")
        if name not in self.matchers:
            raise d.errf("no named response matcher defined with name '%s'", name[1:])
        return self.matchers[name]

    def finalize(self, h: Helper) -> list[dict]:
        """Parse the `handle_response` blocks; the handlers, unmatched ones last.

        Syntax::

            handle_response [<matcher>] {
                <directives...>
            }
        """
        for d in self._segments:
            d.next()
            args = d.remaining_args()
            if len(args) > 1:
                raise d.errf(
                    "too many arguments for 'handle_response': only a single "
                    "response matcher name is allowed, but got: %s",
                    args,
                )
            handler: dict = {}
            if args:
                handler["match"] = self._matcher(d, args[0])
            subroute = parse_segment_as_subroute(h.with_dispenser(d.new_from_next_segment()))
            if subroute.get("routes"):
                handler["routes"] = subroute["routes"]
            self.handlers.append(handler)
        # a handler without a matcher catches everything, so it must come last
        return [x for x in self.handlers if "match" in x] + [
            x for x in self.handlers if "match" not in x
        ]
