"""Name → function tables for directives, global options and request matchers.

Mirrors the registration half of Caddy's `httpcaddyfile/directives.go`: every
table refuses a name that is already taken, so two modules can never silently
fight over one directive. Ordering lives in `order.py`, not here.

Signatures (all raise `CaddyfileError` on bad input):

- directive:          `fn(h: Helper) -> list[ConfigValue]`
- handler directive:  `fn(h: Helper) -> dict` — one handler object (`{"handler": ...}`);
  the optional matcher token before the arguments is handled for it.
- global option:      `fn(d: Dispenser, existing: Any) -> Any` (`existing` is the value of an
  earlier instance of the same option, or None); an `App` value becomes an app of its own.
- matcher:            `fn(d: Dispenser, name: str) -> Any` — the matcher's JSON value; `d`
  holds every segment for that matcher in the set (one per occurrence), `name` is the
  named matcher's name without `@` ('' when there is none).

Modules under `directives/`, `matchers/` and `options/` register themselves when
`load_all()` imports them, so adding one touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from zeroserve.adapt.helper import ConfigValue, Helper
    from zeroserve.caddyfile.dispenser import Dispenser

DirectiveFunc = Callable[["Helper"], "list[ConfigValue]"]
HandlerFunc = Callable[["Helper"], dict]
GlobalOptionFunc = Callable[["Dispenser", Any], Any]
MatcherFunc = Callable[["Dispenser", str], Any]

F = TypeVar("F", bound=Callable[..., Any])

directives: dict[str, DirectiveFunc] = {}
global_options: dict[str, GlobalOptionFunc] = {}
matchers: dict[str, MatcherFunc] = {}


def _put(table: dict[str, Any], kind: str, name: str, fn: Callable[..., Any]) -> None:
    if name in table:
        raise ValueError(f"{kind} {name} already registered")
    table[name] = fn


@dataclass(frozen=True)
class App:
    """A global option's value that is a whole app (Caddy's `httpcaddyfile.App`): the
    adapter puts `value` at `apps.<name>` as it is, in the struct order it was built in."""

    name: str
    value: Any


def register_directive(name: str, fn: DirectiveFunc) -> None:
    _put(directives, "directive", name, fn)


def register_handler_directive(name: str, fn: HandlerFunc) -> None:
    """Register a directive whose only output is one HTTP handler behind an optional matcher."""

    def setup(h: Helper) -> list[ConfigValue]:
        if not h.next():
            raise h.arg_err()
        matcher_set = h.extract_matcher_set()
        return h.new_route(matcher_set, fn(h))

    setup.__doc__ = fn.__doc__
    _put(directives, "directive", name, setup)


def register_global_option(name: str, fn: GlobalOptionFunc) -> None:
    _put(global_options, "global option", name, fn)


def register_matcher(name: str, fn: MatcherFunc) -> None:
    _put(matchers, "matcher", name, fn)


def _decorator(register: Callable[[str, Any], None], names: tuple[str, ...]) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        for name in names:
            register(name, fn)
        return fn

    return wrap


def directive(*names: str) -> Callable[[F], F]:
    return _decorator(register_directive, names)


def handler_directive(*names: str) -> Callable[[F], F]:
    return _decorator(register_handler_directive, names)


def global_option(*names: str) -> Callable[[F], F]:
    return _decorator(register_global_option, names)


def matcher(*names: str) -> Callable[[F], F]:
    return _decorator(register_matcher, names)


_loaded = False


def load_all() -> None:
    """Import every module of the directives, matchers and options packages (once)."""
    global _loaded
    if _loaded:
        return
    for package in ("directives", "matchers", "options"):
        pkg = importlib.import_module(f"zeroserve.adapt.{package}")
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _loaded = True
