"""`php_fastcgi`: a reverse_proxy over FastCGI set up for PHP apps.

From modules/caddyhttp/reverseproxy/fastcgi/caddyfile.go. Expands to a
directory-redirect route, a try_files rewrite route and the proxy route, kept
together in one (possibly literal) subroute.
"""

from __future__ import annotations

from zeroserve.adapt.directives.respond import static_response
from zeroserve.adapt.directives.reverse_proxy import ReverseProxy
from zeroserve.adapt.helper import ConfigValue, Helper, Route, Subroute, new_route, subroute_handler
from zeroserve.adapt.matchers.file import file_matcher
from zeroserve.adapt.registry import directive
from zeroserve.adapt.values import parse_duration
from zeroserve.caddyjson import GoMap


@directive("php_fastcgi")
def parse_php_fastcgi(h: Helper) -> list[ConfigValue]:
    """Syntax::

        php_fastcgi [<matcher>] <php-fpm_gateways...> {
            root <path>
            split <at...>
            env <key> <value>
            index <filename>|off
            try_files <files...>
            resolve_root_symlink
            dial_timeout  <duration>
            read_timeout  <duration>
            write_timeout <duration>
            capture_stderr
            <any other reverse_proxy subdirectives...>
        }

    Without a matcher the routes are returned as a literal subroute, so they stay
    together and in order; with one, they are wrapped in a subroute behind it.
    """
    if not h.next():
        raise h.arg_err()
    transport: dict = {}
    extensions = [".php"]
    index_file = "index.php"
    try_files: list[str] = []
    user_matcher = h.extract_matcher_set()
    d = h.new_from_next_segment()

    # our subdirectives are deleted as they are read, so reverse_proxy never sees them
    while d.next():
        while d.next_block(0):
            # ignore deeper tokens that happen to share a name
            if d.nesting() != 1:
                continue
            sub = d.val()
            if sub == "root":
                if not d.next_arg():
                    raise d.arg_err()
                transport["root"] = d.val()
                d.delete_n(2)
            elif sub == "split":
                extensions = d.remaining_args()
                d.delete_n(len(extensions) + 1)
                if not extensions:
                    raise d.arg_err()
            elif sub == "env":
                args = d.remaining_args()
                d.delete_n(len(args) + 1)
                if len(args) != 2:
                    raise d.arg_err()
                transport.setdefault("env", GoMap())[args[0]] = args[1]
            elif sub == "index":
                args = d.remaining_args()
                d.delete_n(len(args) + 1)
                if len(args) != 1:
                    raise d.arg_err()
                index_file = args[0]
            elif sub == "try_files":
                args = d.remaining_args()
                d.delete_n(len(args) + 1)
                if not args:
                    raise d.arg_err()
                try_files = args
            elif sub in ("resolve_root_symlink", "capture_stderr"):
                args = d.remaining_args()
                d.delete_n(len(args) + 1)
                transport[sub] = True
            elif sub in ("dial_timeout", "read_timeout", "write_timeout"):
                if not d.next_arg():
                    raise d.arg_err()
                try:
                    timeout = parse_duration(d.val())
                except ValueError as exc:
                    raise d.errf("bad timeout value %s: %v", d.val(), exc) from None
                if timeout:
                    transport[sub] = timeout
                else:
                    transport.pop(sub, None)
                d.delete_n(2)
    d.reset()

    transport["split_path"] = extensions
    routes: list[Route] = []
    if index_file != "off":
        dir_index = "{http.request.uri.path}/" + index_file
        try_policy = "first_exist_fallback"
        if not try_files:
            try_files = ["{http.request.uri.path}", dir_index, index_file]
            dir_redirect = True
        else:
            # without a PHP file last, the first existing file wins
            if not try_files[-1].endswith(".php"):
                try_policy = ""
            dir_redirect = dir_index in try_files
        if dir_redirect:
            redirect_matcher = GoMap(
                file=file_matcher(try_files=[dir_index]), **{"not": [GoMap(path=["*/"])]}
            )
            location = "{http.request.orig_uri.path}/{http.request.orig_uri.prefixed_query}"
            routes.append(
                new_route(
                    redirect_matcher,
                    static_response(status="308", headers=GoMap(Location=[location])),
                )
            )
        rewrite_matcher = GoMap(
            file=file_matcher(try_files=try_files, try_policy=try_policy, split_path=extensions)
        )
        routes.append(
            new_route(
                rewrite_matcher, {"handler": "rewrite", "uri": "{http.matchers.file.relative}"}
            )
        )

    rp = ReverseProxy(transport={**transport, "protocol": "fastcgi"})
    d.next()
    rp.unmarshal(d)
    rp.finalize(h)
    routes.append(new_route(GoMap(path=["*" + ext for ext in extensions]), rp.to_json()))

    if user_matcher is not None:
        return [
            ConfigValue("route", Route(match=[user_matcher], handle=[subroute_handler(routes)]))
        ]
    return [ConfigValue("route", Subroute(routes=routes))]
