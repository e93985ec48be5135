"""`redir`: a `static_response` with a Location header (caddyconfig/httpcaddyfile/builtins.go)."""

from __future__ import annotations

from zeroserve.adapt.directives.respond import static_response
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import atoi
from zeroserve.caddyjson import GoMap

# the script comes first to imitate a redirect in the browser's history; the meta
# refresh is the fallback for clients without JS
_HTML_REDIRECT = """<!DOCTYPE html>
<html>
	<head>
		<title>Redirecting...</title>
		<script>window.location.replace("{0}");</script>
		<meta http-equiv="refresh" content="0; URL='{0}'">
	</head>
	<body>Redirecting to <a href="{0}">{0}</a>...</body>
</html>
"""


@handler_directive("redir")
def parse_redir(h: Helper) -> dict:
    """Syntax::

        redir [<matcher>] <to> [<code>]

    `<code>` is `permanent` (301), `temporary` (302, the default), `html` (200 with a
    page that redirects browsers), a placeholder, or a number in 300-399 or 401.
    """
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    to = h.val()
    code = h.val() if h.next_arg() else ""
    body = ""
    headers = None
    if code == "permanent":
        code = "301"
    elif code in ("temporary", ""):
        code = "302"
    elif code == "html":
        import html  # here, not at the top: every directive module loads on each adapt

        # Go's html.EscapeString escapes only <, >, &, ' and "
        safe = html.escape(to).replace("&quot;", "&#34;").replace("&#x27;", "&#39;")
        body = _HTML_REDIRECT.format(safe)
        headers = GoMap({"Content-Type": ["text/html; charset=utf-8"]})
        code = "200"
    elif not code.startswith("{"):
        try:
            code_int = atoi(code)
        except ValueError:
            raise h.errf(
                "Not a supported redir code type or not valid integer: '%s'", code
            ) from None
        if code_int < 300 or (code_int > 399 and code_int != 401):
            raise h.errf("Redir code not in the 3xx range or 401: '%v'", code_int)
    if code != "200":
        headers = GoMap({"Location": [to]})
    return static_response(status=code, headers=headers, body=body)
