"""`forward_auth`: a reverse_proxy to an auth gateway (reverseproxy/forwardauth/caddyfile.go).

The proxy rewrites the request to GET `uri`, tells the gateway the original method
and URI, and on a 2xx answer copies the chosen response headers onto the original
request (deleting any client-sent copy first), then lets handling continue.
"""

from __future__ import annotations

from zeroserve.adapt.directives.header import HeaderOps
from zeroserve.adapt.directives.reverse_proxy import ReverseProxy
from zeroserve.adapt.helper import ConfigValue, Helper, new_route
from zeroserve.adapt.registry import directive
from zeroserve.adapt.values import canonical_header_key
from zeroserve.caddyjson import GoMap


@directive("forward_auth")
def parse_forward_auth(h: Helper) -> list[ConfigValue]:
    """Syntax::

        forward_auth [<matcher>] [<upstreams...>] {
            uri          <to>
            copy_headers <fields...> {
                <fields...>
            }
            <any other reverse_proxy subdirectives...>
        }

    A field may be written `From>To` to copy a response header under another name.
    """
    if not h.next():
        raise h.arg_err()
    user_matcher = h.extract_matcher_set()
    d = h.new_from_next_segment()

    request_headers = HeaderOps()
    request_headers.set["X-Forwarded-Method"] = ["{http.request.method}"]
    request_headers.set["X-Forwarded-Uri"] = ["{http.request.uri}"]
    # always GET, so the auth request never consumes the original body
    rp = ReverseProxy(request_headers=request_headers, rewrite={"method": "GET"})
    to_copy: dict[str, str] = {}

    # our subdirectives are deleted as they are read, so reverse_proxy never sees them
    while d.next():
        while d.next_block(0):
            if d.nesting() != 1:
                continue
            sub = d.val()
            if sub == "uri":
                if not d.next_arg():
                    raise d.arg_err()
                if rp.rewrite.get("uri"):
                    raise d.errf("cannot re-declare uri: %s", d.val())
                rp.rewrite["uri"] = d.val()
                d.delete_n(2)
            elif sub == "copy_headers":
                args = d.remaining_args()
                had_block = False
                nesting = d.nesting()
                while d.next_block(nesting):
                    had_block = True
                    args.append(d.val())
                d.delete_n(len(args) + 1)
                if had_block:
                    d.delete_n(2)
                for name in args:
                    if ">" in name:
                        parts = name.split(">")
                        to_copy[parts[0]] = parts[1]
                    else:
                        to_copy[name] = name
                if not to_copy:
                    raise d.arg_err()
    d.reset()

    if not rp.rewrite.get("uri"):
        raise d.errf("the 'uri' subdirective is required")

    # a 2xx answer runs these routes instead of being written to the client; the
    # no-op vars handler keeps the list non-empty so the entry is never skipped
    good_routes = [new_route(None, {"handler": "vars"}).to_json()]
    for source in sorted(to_copy):
        target = canonical_header_key(to_copy[source])
        placeholder = "{http.reverse_proxy.header." + canonical_header_key(source) + "}"
        good_routes.append(
            new_route(None, {"handler": "headers", "request": {"delete": [target]}}).to_json()
        )
        # an empty placeholder would not be replaced, so only copy headers that exist
        not_empty = GoMap({"not": [GoMap(vars=GoMap({placeholder: [""]}))]})
        good_routes.append(
            new_route(
                not_empty,
                {"handler": "headers", "request": {"set": GoMap({target: [placeholder]})}},
            ).to_json()
        )
    rp.responses.handlers.append({"match": {"status_code": [2]}, "routes": good_routes})

    d.next()
    rp.unmarshal(d)
    rp.finalize(h)
    route = new_route(user_matcher, rp.to_json())
    return [ConfigValue("route", route)]
