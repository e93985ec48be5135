"""Caddyfile syntax: text → tokens → server blocks (knows nothing about HTTP).

Mirrors Caddy v2.11.7's `caddyconfig/caddyfile` package: `lexer` (Tokenize),
`parser` (Parse: env substitution, snippets, imports, named routes),
`dispenser` (the cursor directive code walks), `format` (`caddy fmt`).
"""

from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.lexer import Token, tokenize
from zeroserve.caddyfile.parser import ServerBlock, parse

__all__ = ["CaddyfileError", "Dispenser", "ServerBlock", "Token", "parse", "tokenize"]
