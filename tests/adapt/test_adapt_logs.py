"""Lines Caddy logs while adapting (deprecations, advice), against the real `caddy adapt`.

Both CLIs run on the same file in the same directory; their stderr JSON lines must
agree in order on level, logger, msg and fields (everything but `ts`), and their
stdout must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.caddyfile.oracle import caddy_binary
from tests.support import clean_env

CASES: dict[str, str] = {
    "basicauth": """\
:80 {
\tbasicauth {
\t\tbob $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
\t}
\tbasic_auth /x {
\t\tbob $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
\t}
}
""",
    "skip_log": """\
:80 {
\tskip_log /a
\tlog_skip /b
}
""",
    "health_path": """\
:80 {
\treverse_proxy localhost:8080 {
\t\thealth_path /health
\t}
}
""",
    "forwarded_headers": """\
:80 {
\treverse_proxy localhost:8080 {
\t\theader_up X-Forwarded-For {remote_host}
\t\theader_up x-forwarded-proto {scheme}
\t\theader_up X-Forwarded-Host {host}
\t\theader_up -X-Forwarded-For
\t\theader_up +X-Forwarded-Host a
\t\theader_up X-Forwarded-Proto ^h(.*) x$1
\t\theader_up X-Forwarded-Port 1
\t\theader_up X-Real-IP {remote_host}
\t}
}
""",
    "upstream_host": """\
:80 {
\treverse_proxy https://a:443 {
\t\theader_up Host {upstream_hostport}
\t}
\treverse_proxy https://b:443 {
\t\theader_up host {http.reverse_proxy.upstream.hostport}
\t}
\treverse_proxy c:80 {
\t\theader_up Host {upstream_hostport}
\t}
\treverse_proxy https://d:443 {
\t\theader_up Host {host}
\t}
}
""",
    "transport_fields": """\
:80 {
\treverse_proxy localhost:8080 {
\t\theader_up Host {upstream_hostport}
\t\ttransport http {
\t\t\ttls_trusted_ca_certs ca.pem
\t\t\tforward_proxy_url http://proxy:3128
\t\t}
\t}
}
""",
    # logged per server in the blocks' written order, before they are sorted
    "site_path": """\
example.com/foo, http://b.com/bar/ {
\trespond hi
}

a.com/x {
\trespond hi
}

longer.example.com/y {
\trespond hi
}

:8080/x, https://x.com/a*, x.com:9000/b {
\trespond hi
}
""",
    "unspecified_ip": """\
http://0.0.0.0:8080, [::]:9000, 0.0.0.0/x {
\trespond hi
}
""",
    # from the Caddyfile parser: imports and import arguments
    "imports": """\
import nomatch*.caddy
import empty.caddy

(snip) {
\trespond "{args.0} {args[5]} {args[x]} {args[0]}"
}

:80 {
\timport snip hi
}
""",
    "servers_metrics": """\
{
\tservers {
\t\tmetrics
\t}
}

:80 {
\trespond hi
}
""",
    "client_auth": """\
a.com {
\ttls {
\t\tclient_auth {
\t\t\ttrusted_ca_cert_file ca.pem
\t\t\ttrusted_ca_cert CERT_DER_BASE64
\t\t}
\t}
}
""",
    # logged lines come first, then the returned "not formatted" warning
    "unformatted": """\
:80 {
  skip_log
    basicauth {
\t\tbob $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
\t}
}
""",
    "quiet": """\
:80 {
\treverse_proxy localhost:8080 {
\t\theader_up X-Real-IP {remote_host}
\t\thealth_uri /health
\t}
}
""",
    # the lines logged before a failure still come out (the error itself is compared
    # by test_differential)
    "then_error": """\
:80 {
\tskip_log
\treverse_proxy localhost:8080 {
\t\ttransport http {
\t\t\ttls_trusted_ca_certs
\t\t}
\t}
}
""",
}


def _write_cert(path: Path) -> None:
    """A real self-signed certificate, for the directives that read a PEM file."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(path.with_suffix(".key")),
            "-out",
            str(path),
            "-subj",
            "/CN=zeroserve-test",
            "-days",
            "2",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _lines(stderr: bytes) -> list[dict]:
    records = []
    for line in stderr.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        record.pop("ts", None)
        if record.get("level") != "error":
            records.append(record)
    return records


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes, list[dict]]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60, env=env)
    return proc.returncode, proc.stdout, _lines(proc.stderr)


@pytest.mark.parametrize("name", sorted(CASES))
def test_adapt_logs_match_caddy(name: str, tmp_path: Path) -> None:
    _write_cert(tmp_path / "ca.pem")
    der = "".join(
        line
        for line in (tmp_path / "ca.pem").read_text().splitlines()
        if not line.startswith("-----")
    )
    (tmp_path / "Caddyfile").write_text(CASES[name].replace("CERT_DER_BASE64", der))
    (tmp_path / "empty.caddy").write_text("")
    args = ["adapt", "--config", "Caddyfile", "--adapter", "caddyfile"]
    want = _run([str(caddy_binary()), *args], tmp_path, clean_env())
    got = _run([sys.executable, "-m", "zeroserve.cli.main", *args], tmp_path, dict(os.environ))
    assert got == want
    if name == "quiet":
        assert want[2] == []
    else:
        assert any(r.get("level") == "warn" and "file" not in r for r in want[2])
