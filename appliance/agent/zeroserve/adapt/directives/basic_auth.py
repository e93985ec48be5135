"""`basic_auth` (and its deprecated alias `basicauth`): the `authentication` handler.

From modules/caddyhttp/caddyauth/caddyfile.go.
"""

from __future__ import annotations

from zeroserve.adapt.adaptlog import deprecated_name
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive

_HASHES = ("bcrypt", "argon2id")


@handler_directive("basic_auth", "basicauth")
def parse_basic_auth(h: Helper) -> dict:
    """Syntax::

        basic_auth [<matcher>] [<hash_algorithm> [<realm>]] {
            <username> <hashed_password>
            ...
        }

    The hash algorithm is bcrypt unless given (bcrypt or argon2id).
    """
    h.next()
    if h.val() == "basicauth":
        deprecated_name("basicauth", "basic_auth")
    args = h.remaining_args()
    if len(args) > 2:
        raise h.arg_err()
    hash_name = args[0] if args else "bcrypt"
    if hash_name not in _HASHES:
        raise h.errf("unrecognized hash algorithm: %s", hash_name)
    provider: dict = {"hash": {"algorithm": hash_name}, "hash_cache": {}}
    if len(args) == 2 and args[1]:
        provider["realm"] = args[1]
    accounts: list[dict] = []
    while h.next_block(0):
        username = h.val()
        password = h.val() if h.next_arg() else ""
        if h.next_arg():
            raise h.arg_err()
        if not username or not password:
            raise h.err("username and password cannot be empty or missing")
        accounts.append({"username": username, "password": password})
    if accounts:
        provider["accounts"] = accounts
    return {"handler": "authentication", "providers": {"http_basic": provider}}
