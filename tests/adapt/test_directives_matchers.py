"""Request matchers (named, inline, nested in `not`), checked against `caddy adapt`."""

from __future__ import annotations

import pytest

from tests.adapt.directive_oracle import assert_adapts_like_caddy, site

CASES = {
    "host_path_method": """
@m {
	host a.example.com b.example.com
	host c.example.com
	path /a /b*
	method GET POST
}
respond @m 200
""",
    "header_values_and_absence": """
@m {
	header x-foo bar
	header X-FOO "b a z"
	header !x-absent
	header Accept *
}
respond @m 200
""",
    "header_errors_bang_only": "@m header !\nrespond @m 200",
    "header_errors_no_value": "@m header X-A\nrespond @m 200",
    "header_errors_absent_with_value": "@m header !X-A v\nrespond @m 200",
    "header_block": "@m header X-A v {\n}\nrespond @m 200",
    "query": "@m query a=b c=d a= =x\nrespond @m 200",
    "query_empty": "@m query\nrespond @m 200",
    "query_bad": "@m query a\nrespond @m 200",
    "protocol": "@m {\n\tprotocol http/1.1\n\tprotocol https\n}\nrespond @m 200",
    "protocol_missing": "@m protocol\nrespond @m 200",
    "remote_client_ip": """
@m {
	remote_ip 10.0.0.0/8 private_ranges
	client_ip ::1 192.168.1.1
}
respond @m 200
""",
    "remote_ip_forwarded": "@m remote_ip forwarded 10.0.0.1\nrespond @m 200",
    "remote_ip_empty": "@m remote_ip\nrespond @m 200",
    "path_regexp_named_by_matcher": "@api path_regexp ^/api/(.*)$\nrespond @api {re.api.1}",
    "path_regexp_explicit_name": "@api path_regexp ver ^/v(\\d+)/\nrespond @api 200",
    "path_regexp_twice": "@m {\n\tpath_regexp a\n\tpath_regexp b\n}\nrespond @m 200",
    "path_regexp_arg_count": "@m path_regexp a b c\nrespond @m 200",
    "header_regexp": """
@m {
	header_regexp X-A ^a
	header_regexp nm X-B ^b$
}
respond @m 200
""",
    "header_regexp_duplicate_field": (
        "@m {\n\theader_regexp X ^a\n\theader_regexp X ^b\n}\nrespond @m 1"
    ),
    "vars_and_vars_regexp": """
@m {
	vars {foo} a b
	vars bar c
	vars_regexp {baz} ^x
	vars_regexp nm qux ^y
}
respond @m 200
""",
    "vars_missing_value": "@m vars foo\nrespond @m 200",
    "file_matcher": """
@m {
	file index.html {
		root /srv
		try_files {path} {path}/
		try_policy most_recently_modified
		split_path .php .cgi
	}
}
respond @m 200
""",
    "file_matcher_bare": "@m file\nrespond @m 200",
    "file_matcher_unknown": "@m file {\n\tbogus x\n}\nrespond @m 200",
    "not_matchers": """
@m {
	not path /a*
	not {
		method POST
		header X-A b
	}
	not path_regexp ^/x
}
respond @m 200
""",
    "not_quoted_expression": '@m not `{path} == "/a"`\nrespond @m 200',
    "not_unknown_matcher": "@m not bogus x\nrespond @m 200",
    "expression_forms": """
@a expression {http.error.status_code} == 400
abort @a
@b expression "{path}.startsWith('/x')"
abort @b
@c `path('/c*')`
abort @c
""",
    "tls_matcher": "@m tls early_data\nrespond @m 425\n@n tls\nrespond @n 200",
    "tls_matcher_extra_arg": "@m tls early_data x\nrespond @m 425",
    "url_pattern": """
@m url_pattern /books/:id {
	base_url https://example.com
	ignore_case
}
respond @m 200
""",
    "url_pattern_two_patterns": "@m url_pattern /a /b\nrespond @m 200",
    "url_pattern_bad_option": "@m url_pattern /a {\n\tbogus\n}\nrespond @m 200",
    "unknown_matcher": "@m bogus\nrespond @m 200",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_matcher(body: str, tmp_path, monkeypatch) -> None:
    assert_adapts_like_caddy(site(body), tmp_path, monkeypatch)
