"""Handler directives (everything but the reverse_proxy family), against `caddy adapt`."""

from __future__ import annotations

import pytest

from tests.adapt.directive_oracle import assert_adapts_like_caddy, site

CASES = {
    # respond / abort / error / redir
    "respond_forms": """
respond /a "hi"
respond /b 404
respond /c "body" 201
respond /d "x" {placeholder}
respond /e {
	body "block body"
	close
}
respond /f 200 {
	body "{\\"json\\": 1}"
}
""",
    "respond_body_twice": 'respond "a" {\n\tbody b\n}',
    "respond_close_twice": "respond 200 {\n\tclose\n\tclose\n}",
    "respond_no_args": "respond",
    "respond_too_many": "respond a b c",
    "respond_unknown_sub": "respond 200 {\n\tbogus\n}",
    "abort": "abort /x",
    "abort_arg": "abort x y",
    "error_forms": """
error /a 403
error /b "denied" 401
error /c "boom" {
}
error /d {
	message "msg"
}
""",
    "error_message_twice": 'error "a" {\n\tmessage b\n}',
    "redir_forms": """
redir /a /b
redir /c /d permanent
redir /e /f temporary
redir /g https://x/?a=<b>&c='d' html
redir /h /i 307
redir /j /k 401
redir /l /m {http.vars.code}
""",
    "redir_bad_code": "redir /a /b 200",
    "redir_not_number": "redir /a /b nope",
    "redir_no_args": "redir",
    # vars / map
    "vars_forms": """
vars foo bar
vars /x {
	n 12
	f 1.5
	b true
	q "true"
	handler override
}
""",
    "vars_too_many": "vars a b c",
    "map": """
map {host} {my_a} {my_b} {
	~^(.*)\\.example\\.com$ ${1} -
	foo.com 12 true
	bar.com "quoted"
	default x
}
""",
    "map_shorthand_dest": "map {host} {path}",
    "map_no_dest": "map {host}",
    "map_too_many_outputs": "map {host} {a} {\n\tx 1 2\n}",
    "map_defaults_twice": "map {host} {a} {\n\tdefault 1\n\tdefault 2\n}",
    # header / request_header
    "header_line_forms": """
header X-A b
header /p +X-B c
header -Server
header ?X-C d
header >X-D e
header X-E old new
header >X-F old new
header Cache-Control: no-store
""",
    "header_block": """
header {
	X-A b
	+X-B c
	-X-Remove
	?X-Default v
	>X-Deferred w
	X-Rep a b
	defer
}
""",
    "header_match": """
header {
	X-A b
	match {
		status 2xx 404
		header Content-Type text/*
	}
}
header X-B c {
	match status 500
}
""",
    "header_args_and_block": "header X-A b {\n\tX-B c\n}",
    "header_empty": "header",
    "request_header": """
request_header X-A b
request_header +X-B c
request_header -X-C
request_header X-D old new
request_header X-E: v
""",
    "request_header_default": "request_header ?X-A b",
    "request_header_too_many": "request_header X-A a b c",
    # rewrite / method / uri
    "rewrite": "rewrite /a /b\nrewrite /c?{query}\nrewrite @x /y\n@x path /x",
    "rewrite_counts": "rewrite",
    "rewrite_too_many": "rewrite a b c",
    "method": "method /x PUT",
    "method_extra": "method PUT POST",
    "uri_ops": """
uri strip_prefix /api
uri strip_suffix .html
uri replace /old /new
uri replace a b 2
uri path_regexp ^/x(.*) /y$1
uri query +a b
uri query -c
uri query d e
uri query f>g
uri query h i j
uri query {
	+k l
	-m
}
uri query
""",
    "uri_bad_limit": "uri replace a b x",
    "uri_unknown": "uri bogus x",
    "uri_query_args_and_block": "uri query a b {\n\tc d\n}",
    "uri_query_rename_args": "uri query a>b c",
    # encode
    "encode_forms": """
encode
encode /a gzip
encode /b zstd gzip {
	minimum_length 512
	match {
		status 2xx
		header Content-Type text/*
	}
}
encode /c {
	gzip 9
	zstd {
		level best
		disable_checksum
	}
}
encode /d {
	zstd fastest
	gzip 0
	minimum_length 0
}
""",
    "encode_unknown_format": "encode br",
    "encode_unknown_block_format": "encode {\n\tbr\n}",
    "encode_bad_min_length": "encode {\n\tminimum_length 1kb\n}",
    "encode_bad_gzip": "encode {\n\tgzip x\n}",
    "encode_bad_zstd_level": "encode {\n\tzstd ultra\n}",
    "encode_zstd_level_twice": "encode {\n\tzstd fastest {\n\t\tlevel best\n\t}\n}",
    # file_server / try_files
    "file_server_forms": """
file_server /a
file_server /b browse
file_server /c {
	fs myfs
	root /srv
	hide .git Caddyfile
	hide *.bak
	index index.htm default.htm
	browse tpl.html {
		reveal_symlinks
		sort size desc
		file_limit 100
	}
	precompressed br gzip
	status 404
	disable_canonical_uris
	pass_thru
	etag_file_extensions .sha256
}
file_server /d {
	precompressed
	status {env.STATUS}
}
""",
    "file_server_bad_arg": "file_server nope",
    "file_server_fs_twice": "file_server {\n\tfs a\n\tfs b\n}",
    "file_server_browse_twice": "file_server browse {\n\tbrowse\n}",
    "file_server_bad_sort": "file_server {\n\tbrowse {\n\t\tsort bogus\n\t}\n}",
    "file_server_bad_limit": "file_server {\n\tbrowse {\n\t\tfile_limit x\n\t}\n}",
    "file_server_bad_precompressed": "file_server {\n\tprecompressed lz4\n}",
    "file_server_unknown": "file_server {\n\tbogus\n}",
    "try_files": """
try_files {path} {path}/ /index.php?{query}&p={path} /fallback
try_files /a {
	policy smallest_size
}
""",
    "try_files_none": "try_files",
    "try_files_bad_policy": "try_files a {\n\tpolicy bogus\n}",
    "try_files_policy_twice": "try_files a {\n\tpolicy first_exist\n\tpolicy first_exist\n}",
    # request_body / templates / push
    "request_body": 'request_body /up {\n\tmax_size 10MB\n\tset "replaced"\n}\nrequest_body',
    "request_body_bad_size": "request_body {\n\tmax_size 5x\n}",
    "request_body_unknown": "request_body {\n\tread_timeout 5s\n}",
    "templates": """
templates
templates /t {
	mime text/html text/plain
	between [[ ]]
	root /srv/tpl
	ignored subdirective
}
""",
    "templates_between_one": "templates {\n\tbetween [[\n}",
    "templates_extension_module": "templates {\n\textensions {\n\t\tbogus\n\t}\n}",
    "push": """
push
push /page.html /style.css
push /other {
	/a.js
	HEAD /b.png
	headers {
		+X-A b
		-X-B
		X-C old new
	}
}
""",
    "push_headers_args": "push {\n\theaders x\n}",
    # basic_auth
    "basic_auth": """
basic_auth /admin {
	alice $2a$14$hash
	bob $2a$14$other
}
basicauth /old bcrypt realm {
	carol $2a$14$x
}
basic_auth argon2id
""",
    "basic_auth_bad_hash": "basic_auth sha1",
    "basic_auth_missing_password": "basic_auth {\n\talice\n}",
    # intercept
    "intercept": """
intercept {
	@err status 4xx 5xx
	@teapot {
		status 418
		header X-Teapot *
	}
	replace_status @teapot 200
	replace_status 201
	handle_response {
		respond "fallback"
	}
	handle_response @err {
		respond "error {resp.status_code}"
	}
}
""",
    "intercept_unknown_matcher": "intercept {\n\thandle_response @nope {\n\t}\n}",
    "intercept_matcher_twice": "intercept {\n\t@a status 200\n\t@a status 201\n}",
    "intercept_bad_response_matcher": "intercept {\n\t@a bogus 1\n}",
    "intercept_replace_status_block": "intercept {\n\treplace_status 200 {\n\t\tx\n\t}\n}",
    "intercept_too_many_args": "intercept {\n\thandle_response @a 200 {\n\t}\n}",
    # tracing / metrics / acme_server
    "tracing": """
tracing {
	span my_span
	span_attributes {
		env prod
		region "eu west"
	}
}
""",
    "tracing_arg": "tracing x",
    "metrics": "metrics /metrics\nmetrics /m2 {\n\tdisable_openmetrics\n}",
    "metrics_unknown": "metrics {\n\tbogus\n}",
    "acme_server": """
acme_server {
	ca myca
	lifetime 12h
	resolvers 1.1.1.1
	challenges http-01 dns-01
	allow_wildcard_names
	allow {
		domains a.example.com
		ip_ranges 10.0.0.0/8
	}
	deny {
		domains bad.example.com
	}
	sign_with_root
}
""",
    "acme_server_bad_lifetime": "acme_server {\n\tlifetime soon\n}",
    "acme_server_unknown": "acme_server {\n\tbogus\n}",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_handler_directive(body: str, tmp_path, monkeypatch) -> None:
    assert_adapts_like_caddy(site(body), tmp_path, monkeypatch)
