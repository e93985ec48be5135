"""The PKI app: certificate authorities from the `pki` option and `acme_server` (pkiapp.go).

A CA is a dict with an "id" key (its key in the app's map, not encoded) and the
`caddypki.CA` fields; directives hand them over as "pki.ca" config values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeroserve.caddyjson import GoMap

if TYPE_CHECKING:
    from zeroserve.adapt.helper import Warning
    from zeroserve.adapt.httptype import Pairing

DEFAULT_CA_ID = "local"


def build_pki_app(
    pairings: list[Pairing], options: dict[str, Any], warnings: list[Warning]
) -> dict | None:
    from zeroserve.adapt.options.basic import ca_json

    skip_install_trust = "skip_install_trust" in options
    cas: dict[str, dict] = dict(options.get("pki") or {})
    for ca in cas.values():
        if skip_install_trust:
            ca["install_trust"] = False
    for p in pairings:
        for sb in p.blocks or []:
            for cv in sb.pile.get("pki.ca", []):
                ca = cv.value
                if skip_install_trust:
                    ca["install_trust"] = False
                cas.setdefault(ca["id"], ca)
    # the local CA only matters when automatic HTTPS may use the internal issuer
    if not cas and skip_install_trust and "off" not in (options.get("auto_https") or []):
        cas[DEFAULT_CA_ID] = {"id": DEFAULT_CA_ID, "install_trust": False}
    if not cas:
        return None
    return {
        "certificate_authorities": GoMap(
            (ca_id, ca_json({k: v for k, v in ca.items() if k != "id"}))
            for ca_id, ca in cas.items()
        )
    }
