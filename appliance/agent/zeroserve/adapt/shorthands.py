"""Placeholder shorthands (`{path}`, `{header.X}`, ...) and their full names (shorthands.go)."""

from __future__ import annotations

import re

from zeroserve.caddyfile.lexer import Token

_R = "{http.request."
PLACEHOLDER_SHORTHANDS: tuple[tuple[str, str], ...] = (
    ("{host}", _R + "host}"),
    ("{hostport}", _R + "hostport}"),
    ("{port}", _R + "port}"),
    ("{orig_method}", _R + "orig_method}"),
    ("{orig_uri}", _R + "orig_uri}"),
    ("{orig_path}", _R + "orig_uri.path}"),
    ("{orig_dir}", _R + "orig_uri.path.dir}"),
    ("{orig_file}", _R + "orig_uri.path.file}"),
    ("{orig_query}", _R + "orig_uri.query}"),
    ("{orig_?query}", _R + "orig_uri.prefixed_query}"),
    ("{method}", _R + "method}"),
    ("{uri}", _R + "uri}"),
    ("{%uri}", _R + "uri_escaped}"),
    ("{path}", _R + "uri.path}"),
    ("{%path}", _R + "uri.path_escaped}"),
    ("{dir}", _R + "uri.path.dir}"),
    ("{file}", _R + "uri.path.file}"),
    ("{query}", _R + "uri.query}"),
    ("{%query}", _R + "uri.query_escaped}"),
    ("{?query}", _R + "uri.prefixed_query}"),
    ("{remote}", _R + "remote}"),
    ("{remote_host}", _R + "remote.host}"),
    ("{remote_port}", _R + "remote.port}"),
    ("{scheme}", _R + "scheme}"),
    ("{uuid}", _R + "uuid}"),
    ("{tls_cipher}", _R + "tls.cipher_suite}"),
    ("{tls_version}", _R + "tls.version}"),
    ("{tls_client_fingerprint}", _R + "tls.client.fingerprint}"),
    ("{tls_client_issuer}", _R + "tls.client.issuer}"),
    ("{tls_client_serial}", _R + "tls.client.serial}"),
    ("{tls_client_subject}", _R + "tls.client.subject}"),
    ("{tls_client_certificate_pem}", _R + "tls.client.certificate_pem}"),
    ("{tls_client_certificate_der_base64}", _R + "tls.client.certificate_der_base64}"),
    ("{upstream_hostport}", "{http.reverse_proxy.upstream.hostport}"),
    ("{client_ip}", "{http.vars.client_ip}"),
)

# prefix families: (short prefix, long prefix, whether dots may appear in the name)
_FAMILIES: tuple[tuple[str, str, bool], ...] = (
    ("header", "http.request.header", False),
    ("cookie", "http.request.cookie", False),
    ("labels", "http.request.host.labels", False),
    ("file", "http.request.uri.path.file", False),
    ("path", "http.request.uri.path", False),
    ("query", "http.request.uri.query", False),
    ("re", "http.regexp", True),
    ("vars", "http.vars", False),
    ("rp", "http.reverse_proxy", True),
    ("resp", "http.intercept", True),
    ("err", "http.error", True),
    ("file_match", "http.matchers.file", False),
)

_SIMPLE = dict(PLACEHOLDER_SHORTHANDS)
_SIMPLE_RE = re.compile("|".join(re.escape(k) for k, _ in PLACEHOLDER_SHORTHANDS))
_COMPLEX = [
    (
        re.compile(
            r"\{" + re.escape(short) + (r"\.([\w\-.]*)\}" if dots else r"\.([\w-]*)\}"), re.ASCII
        ),
        "{" + long + r".\1}",
    )
    for short, long, dots in _FAMILIES
]


def expand(text: str) -> str:
    """Replace every shorthand in `text` with its full placeholder."""
    if "{" not in text:
        return text
    text = _SIMPLE_RE.sub(lambda m: _SIMPLE[m.group(0)], text)
    for pattern, repl in _COMPLEX:
        text = pattern.sub(repl, text)
    return text


def apply_to_segment(segment: list[Token]) -> None:
    for tok in segment:
        tok.text = expand(tok.text)


def was_replaced_placeholder_shorthand(token: str) -> str:
    """The shorthand whose expansion `token` is (ignoring braces), or ''."""
    bare = token.strip("{}")
    for short, long in PLACEHOLDER_SHORTHANDS:
        if bare == long.strip("{}"):
            return short
    return ""
