"""Trusted-CA pool sources, `tls.ca_pool.source.*` (Caddy's modules/caddytls/capools.go).

Used by `reverse_proxy`'s `transport http { tls_trust_pool ... }` and by the `tls`
directive's `client_auth { trust_pool ... }`. `unmarshal_ca_pool(d)` parses the
module named by the current token and returns its JSON object, including the
`provider` field that names it.
"""

from __future__ import annotations

from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.storage import unmarshal_storage
from zeroserve.adapt.values import parse_duration
from zeroserve.caddyfile.dispenser import Dispenser


def unmarshal_ca_pool(d: Dispenser) -> dict:
    """The CA pool module named by the current token, as `{"provider": name, ...}`."""
    name = d.val()
    return {**unmarshal_module(d, "tls.ca_pool.source", CA_POOLS), "provider": name}


def _inline(d: Dispenser) -> dict:
    """Syntax::

    inline {
        trust_der <base64_der_cert>...
    }
    """
    d.next()
    if d.count_remaining_args() > 0:
        raise d.arg_err()
    certs: list[str] = []
    while d.next_block(0):
        if d.val() != "trust_der":
            raise d.errf("unrecognized directive: %s", d.val())
        certs += d.remaining_args()
    if not certs:
        raise d.err("no certificates specified")
    return {"trusted_ca_certs": certs}


def _file(d: Dispenser) -> dict:
    """Syntax::

    file [<pem_file>...] {
        pem_file <pem_file>...
    }
    """
    d.next()
    files = d.remaining_args()
    while d.next_block(0):
        if d.val() != "pem_file":
            raise d.errf("unrecognized directive: %s", d.val())
        files += d.remaining_args()
    if not files:
        raise d.err("no certificates specified")
    return {"pem_files": files}


def _pki(d: Dispenser) -> dict:
    """Syntax (pki_root and pki_intermediate)::

    pki_root [<ca_name>...] {
        authority <ca_name>...
    }
    """
    d.next()
    authorities = d.remaining_args()
    nesting = d.nesting()
    while d.next_block(nesting):
        if d.val() != "authority":
            raise d.errf("unrecognized directive: %s", d.val())
        authorities += d.remaining_args()
    if not authorities:
        raise d.err("no authorities specified")
    return {"authority": authorities}


def _storage(d: Dispenser) -> dict:
    """Syntax::

    storage [<storage_keys>...] {
        storage <storage_module>
        keys    <storage_keys>...
    }
    """
    d.next()
    out: dict = {}
    keys = d.remaining_args()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "storage":
            if "storage" in out:
                raise d.err("storage module already set")
            if not d.next_arg():
                raise d.arg_err()
            out["storage"] = unmarshal_storage(d)
        elif sub == "keys":
            keys += d.remaining_args()
        else:
            raise d.errf("unrecognized directive: %s", sub)
    if keys:
        out["pem_keys"] = keys
    return out


def _http(d: Dispenser) -> dict:
    """Syntax::

    http [<endpoints...>] {
        endpoints <endpoints...>
        tls {
            ca <ca_module> ...
            insecure_skip_verify
            handshake_timeout <duration>
            server_name <name>
            renegotiation never|once|freely
        }
    }
    """
    d.next()
    out: dict = {}
    endpoints = d.remaining_args()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "endpoints":
            if d.count_remaining_args() == 0:
                raise d.arg_err()
            endpoints += d.remaining_args()
        elif sub == "tls":
            if "tls" in out:
                raise d.err("tls block already defined")
            out["tls"] = _tls_config(d)
        else:
            raise d.errf("unrecognized directive: %s", sub)
    if endpoints:
        out = {"endpoints": endpoints, **out}
    return out


def _tls_config(d: Dispenser) -> dict:
    out: dict = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "ca":
            if not d.next_arg():
                raise d.arg_err()
            out["ca"] = unmarshal_ca_pool(d)
        elif sub == "insecure_skip_verify":
            out["insecure_skip_verify"] = True
        elif sub == "handshake_timeout":
            if not d.next_arg():
                raise d.arg_err()
            try:
                timeout = parse_duration(d.val())
            except ValueError as exc:
                raise d.errf("bad timeout value '%s': %v", d.val(), exc) from None
            if timeout:
                out["handshake_timeout"] = timeout
        elif sub == "server_name":
            if not d.next_arg():
                raise d.arg_err()
            out["server_name"] = d.val()
        elif sub == "renegotiation":
            if not d.next_arg():
                raise d.arg_err()
            if d.val() not in ("never", "once", "freely"):
                raise d.errf("unrecognized renegotiation level: %s", "")
            out["renegotiation"] = d.val()
        else:
            raise d.errf("unrecognized directive: %s", sub)
    return out


def _combined(d: Dispenser) -> dict:
    """Syntax::

    combined {
        source <ca_module> ...
    }
    """
    d.next()
    sources: list[dict] = []
    nesting = d.nesting()
    while d.next_block(nesting):
        if d.val() != "source":
            raise d.errf("unrecognized directive: %s", d.val())
        if not d.next_arg():
            raise d.arg_err()
        sources.append(unmarshal_ca_pool(d))
    if not sources:
        raise d.err("no sources specified")
    return {"sources": sources}


def _system(d: Dispenser) -> dict:
    """Syntax::

    system
    """
    d.next()
    if d.count_remaining_args() > 0:
        raise d.arg_err()
    return {}


CA_POOLS = {
    "inline": _inline,
    "file": _file,
    "pki_root": _pki,
    "pki_intermediate": _pki,
    "storage": _storage,
    "http": _http,
    "combined": _combined,
    "system": _system,
}
