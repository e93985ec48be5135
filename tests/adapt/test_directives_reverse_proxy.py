"""reverse_proxy and what builds on it (php_fastcgi, forward_auth), against `caddy adapt`."""

from __future__ import annotations

import pytest

from tests.adapt.directive_oracle import assert_adapts_like_caddy, site

UPSTREAMS = [
    "localhost:8080",
    ":9000",
    "10.0.0.1",
    "[::1]:80",
    "http://[::1]",
    "http://a",
    "http://a:",
    "HTTP://A:81",
    "https://a",
    "https://a:8443",
    "h2c://a",
    "unix//run/app.sock",
    "unix+h2c//run/app.sock",
    "fd/3",
    "localhost:{env.PORT}",
    "{env.UPSTREAM}",
    "a:8001-8003",
    "https://a:8443-8444",
    # errors
    "http://a:b",
    "http://a/path",
    "http://a?q",
    "ws://a",
    "wss://a",
    "foo://a",
    "http://a:443",
    "https://a:80",
    "h2c://a:443",
    "http://{x}:80",
    "http://a:1-2-3",
    "a:5-3",
    "a:99999",
    "https://a http://b",
]

CASES = {
    "everything": """
reverse_proxy /api/* a:1 b:2 {
	to c:3
	lb_policy cookie srv secret {
		max_age 1h
		fallback ip_hash
	}
	lb_retries 3
	lb_try_duration 5s
	lb_try_interval 250ms
	lb_retry_match {
		method POST
	}
	lb_retry_match `{rp.status_code} == 502` path /x
	health_uri /health?full=1
	health_upstream c:9
	health_headers {
		X-A b c
		X-Empty
	}
	health_method HEAD
	health_request_body "ping"
	health_interval 10s
	health_timeout 2s
	health_status 2xx
	health_body ok
	health_follow_redirects
	health_passes 2
	health_fails 3
	max_fails 4
	fail_duration 30s
	unhealthy_request_count 10
	unhealthy_status 5xx 404
	unhealthy_latency 3s
	flush_interval -1
	request_buffers 4k
	response_buffers unlimited
	stream_buffer_size 64KiB
	stream_timeout 1h
	stream_close_delay 5m
	trusted_proxies private_ranges 1.2.3.4
	header_up Host {upstream_hostport}
	header_up +X-A b
	header_up -X-B
	header_up X-C a b
	header_down -Server
	header_down >X-Late v
	method GET
	rewrite /x?{query}
	verbose_logs
}
""",
    "health_path_port": "reverse_proxy a:1 {\n\thealth_path /x\n\thealth_port 8080\n}",
    "zero_values": """
reverse_proxy a:1 {
	lb_retries 0
	health_port 0
	flush_interval 0
	request_buffers 0
	stream_timeout 0s
}
""",
    "policies": """
reverse_proxy /1 a:1 {
	lb_policy header X-Route {
		fallback first
	}
}
reverse_proxy /2 a:1 {
	lb_policy query key {
		fallback cookie {
			fallback random
		}
	}
}
reverse_proxy /3 a:1 {
	lb_policy weighted_round_robin 3 0 1
}
reverse_proxy /4 a:1 {
	lb_policy random_choose 3
}
reverse_proxy /5 a:1 {
	lb_policy cookie
}
reverse_proxy /6 a:1 {
	lb_policy client_ip_hash
}
""",
    "policy_twice": "reverse_proxy a:1 {\n\tlb_policy first\n\tlb_policy random\n}",
    "policy_unknown": "reverse_proxy a:1 {\n\tlb_policy memento\n}",
    "policy_negative_weight": "reverse_proxy a:1 {\n\tlb_policy weighted_round_robin -1\n}",
    "policy_extra_arg": "reverse_proxy a:1 {\n\tlb_policy first x\n}",
    "policy_fallback_twice": (
        "reverse_proxy a:1 {\n\tlb_policy query k {\n\t\tfallback random\n"
        "\t\tfallback first\n\t}\n}"
    ),
    "policy_cookie_bad_age": "reverse_proxy a:1 {\n\tlb_policy cookie {\n\t\tmax_age -1s\n\t}\n}",
    "dynamic_a": """
reverse_proxy {
	dynamic a example.com 8080 {
		refresh 5s
		resolvers 1.1.1.1
		dial_timeout 1s
		dial_fallback_delay 2s
		versions ipv4 ipv6
	}
}
""",
    "dynamic_srv_multi": """
reverse_proxy /s {
	dynamic srv _http._tcp.example.com {
		refresh 1m
		grace_period 5s
	}
}
reverse_proxy /m {
	dynamic multi {
		a example.com 80
		srv {
			service web
			proto tcp
			name example.com
		}
	}
}
""",
    "dynamic_srv_name_twice": "reverse_proxy {\n\tdynamic srv x {\n\t\tname y\n\t}\n}",
    "dynamic_unknown": "reverse_proxy {\n\tdynamic bogus\n}",
    "transport_http": """
reverse_proxy a:1 {
	transport http {
		read_buffer 4k
		write_buffer 8k
		read_timeout 5s
		write_timeout 6s
		max_response_header 1MB
		proxy_protocol v2
		dial_timeout 3s
		dial_fallback_delay 100ms
		response_header_timeout 7s
		expect_continue_timeout 1s
		resolvers 8.8.8.8 1.1.1.1
		tls
		tls_client_auth cert.pem key.pem
		tls_insecure_skip_verify
		tls_curves x25519 p256
		tls_timeout 9s
		tls_server_name example.com
		tls_renegotiation once
		tls_except_ports 8080 8081
		keepalive 30s
		keepalive_interval 15s
		keepalive_idle_conns 100
		keepalive_idle_conns_per_host 10
		versions 1.1 2
		compression off
		max_conns_per_host 50
		local_address 10.0.0.1
		network_proxy url http://proxy:3128
	}
}
""",
    "transport_http_more": """
reverse_proxy https://a {
	transport http {
		tls_client_auth automate-name
		keepalive off
		forward_proxy_url http://proxy
		tls_trusted_ca_certs ca.pem
	}
}
""",
    "transport_trust_pools": """
reverse_proxy /1 a:1 {
	transport http {
		tls_trust_pool file ca.pem {
			pem_file other.pem
		}
	}
}
reverse_proxy /2 a:1 {
	transport http {
		tls_trust_pool pki_root local
	}
}
reverse_proxy /3 a:1 {
	transport http {
		tls_trust_pool http https://ca.example/roots.pem {
			tls {
				insecure_skip_verify
				server_name ca.example
			}
		}
	}
}
reverse_proxy /4 a:1 {
	transport http {
		tls_trust_pool combined {
			source storage k1 k2
			source system
		}
	}
}
""",
    "trust_pool_empty_inline": (
        "reverse_proxy a:1 {\n\ttransport http {\n\t\ttls_trust_pool inline\n\t}\n}"
    ),
    "trust_pool_twice": (
        "reverse_proxy a:1 {\n\ttransport http {\n\t\ttls_trust_pool file a.pem\n"
        "\t\ttls_trust_pool file b.pem\n\t}\n}"
    ),
    "trust_pool_and_ca_certs": (
        "reverse_proxy a:1 {\n\ttransport http {\n\t\ttls_trust_pool file a.pem\n"
        "\t\ttls_trusted_ca_certs b.pem\n\t}\n}"
    ),
    "transport_empty": "reverse_proxy a:1 {\n\ttransport http\n}",
    "transport_http_tls_on_http": "reverse_proxy http://a {\n\ttransport http {\n\t\ttls\n\t}\n}",
    "transport_bad_proxy_protocol": (
        "reverse_proxy a:1 {\n\ttransport http {\n\t\tproxy_protocol v3\n\t}\n}"
    ),
    "transport_bad_renegotiation": (
        "reverse_proxy a:1 {\n\ttransport http {\n\t\ttls_renegotiation sometimes\n\t}\n}"
    ),
    "transport_unknown_sub": "reverse_proxy a:1 {\n\ttransport http {\n\t\tbogus\n\t}\n}",
    "transport_unknown": "reverse_proxy a:1 {\n\ttransport grpc\n}",
    "transport_fastcgi": """
reverse_proxy a:9000 {
	transport fastcgi {
		root /srv
		split .php .php5
		env A B
		resolve_root_symlink
		dial_timeout 1s
		read_timeout 2s
		write_timeout 3s
		capture_stderr
	}
}
""",
    "transport_fastcgi_https": "reverse_proxy https://a {\n\ttransport fastcgi\n}",
    "handle_response": """
reverse_proxy a:1 {
	@500 status 500
	replace_status @500 400
	replace_status 418
	@accel header X-Accel-Redirect *
	handle_response @accel {
		root * /srv
		rewrite * {rp.header.X-Accel-Redirect}
		file_server
	}
	handle_response {
		copy_response_headers {
			include A B
			exclude C
		}
		copy_response 404
	}
}
""",
    "copy_response_block": (
        "reverse_proxy a:1 {\n\thandle_response {\n\t\tcopy_response {\n"
        "\t\t\tstatus 503\n\t\t}\n\t}\n}"
    ),
    "handle_response_two_args": "reverse_proxy a:1 {\n\thandle_response @a b {\n\t}\n}",
    "verbose_logs_twice": "reverse_proxy a:1 {\n\tverbose_logs\n\tverbose_logs\n}",
    "unknown_sub": "reverse_proxy a:1 {\n\tbogus\n}",
    "bad_durations": "reverse_proxy a:1 {\n\tlb_try_duration soon\n}",
    "bad_health_status": "reverse_proxy a:1 {\n\thealth_status 2x\n}",
    "bad_unhealthy_status": "reverse_proxy a:1 {\n\tunhealthy_status 500 5x 404\n}",
    "bad_health_upstream": "reverse_proxy a:1 {\n\thealth_upstream nohost\n}",
    "health_port_after_upstream": (
        "reverse_proxy a:1 {\n\thealth_upstream b:1\n\thealth_port 2\n}"
    ),
    "bad_buffer_size": "reverse_proxy a:1 {\n\trequest_buffers 1x\n}",
    "buffer_extra_arg": "reverse_proxy a:1 {\n\tresponse_buffers 1 2\n}",
    "bad_retry_match": "reverse_proxy a:1 {\n\tlb_retry_match bogus\n}",
    "header_up_default_op": "reverse_proxy a:1 {\n\theader_up ?X-A b\n}",
    "header_up_too_many": "reverse_proxy a:1 {\n\theader_up a b c d\n}",
    "php_fastcgi_plain": "php_fastcgi localhost:9000",
    "php_fastcgi_options": """
php_fastcgi /app/* unix//run/php.sock {
	root /var/www
	split .php .phtml
	env A B
	env C D
	index main.php
	resolve_root_symlink
	capture_stderr
	dial_timeout 1s
	read_timeout 2s
	write_timeout 3s
	lb_policy first
	@error status 5xx
	handle_response @error {
		respond "php failed"
	}
}
""",
    "php_fastcgi_try_files": """
php_fastcgi /a localhost:9000 {
	try_files {path} {path}/index.php index.html
}
php_fastcgi /b localhost:9000 {
	index off
}
""",
    "php_fastcgi_transport_twice": "php_fastcgi a:9000 {\n\ttransport fastcgi\n}",
    "php_fastcgi_bad_env": "php_fastcgi a:9000 {\n\tenv A\n}",
    "forward_auth": """
forward_auth /private/* authelia:9091 {
	uri /api/verify?rd=https://auth.example.com
	copy_headers Remote-User Remote-Groups>X-Groups {
		Remote-Email
		remote_name>x_name
	}
	header_up X-Extra yes
	lb_policy first
}
""",
    "forward_auth_no_uri": "forward_auth a:1",
    "forward_auth_uri_twice": "forward_auth a:1 {\n\turi /a\n\turi /b\n}",
    "forward_auth_empty_copy": "forward_auth a:1 {\n\turi /a\n\tcopy_headers\n}",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_reverse_proxy_family(body: str, tmp_path, monkeypatch) -> None:
    assert_adapts_like_caddy(site(body), tmp_path, monkeypatch)


@pytest.mark.parametrize("upstreams", UPSTREAMS)
def test_upstream_address(upstreams: str, tmp_path, monkeypatch) -> None:
    assert_adapts_like_caddy(site(f"reverse_proxy {upstreams}"), tmp_path, monkeypatch)
