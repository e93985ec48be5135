"""The `logging` section: global `log` options plus each site's access loggers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeroserve.adapt.directives.log import DEFAULT_LOGGER_NAME, custom_log_json
from zeroserve.adapt.helper import NamedCustomLog
from zeroserve.caddyjson import GoMap

if TYPE_CHECKING:
    from zeroserve.adapt.httptype import SiteBlock


def build_logging(sites: list[SiteBlock], options: dict[str, Any]) -> dict | None:
    custom: list[NamedCustomLog] = []
    has_default = False
    debug = "debug" in options

    def add(ncl: NamedCustomLog) -> None:
        nonlocal has_default
        if not ncl.name:
            return
        if ncl.name == DEFAULT_LOGGER_NAME:
            has_default = True
        if debug and ncl.log is not None and not ncl.log.get("level"):
            ncl.log["level"] = "DEBUG"
        custom.append(ncl)

    for cv in options.get("log") or []:
        add(cv.value)
    if not has_default and debug:
        custom.append(NamedCustomLog(DEFAULT_LOGGER_NAME, log={"level": "DEBUG"}))
    for sb in sites:
        for cv in sb.pile.get("custom_log", []):
            add(cv.value)
    if not custom:
        return None

    logs: dict[str, dict] = {}
    for ncl in custom:
        if ncl.name == DEFAULT_LOGGER_NAME and ncl.log is not None:
            logs[DEFAULT_LOGGER_NAME] = ncl.log
            break
    for ncl in custom:
        if ncl.log is None or ncl.name == DEFAULT_LOGGER_NAME:
            continue
        logs[ncl.name] = ncl.log
        if ncl.log.get("include"):
            default = logs.setdefault(DEFAULT_LOGGER_NAME, {})
            default["exclude"] = sorted(set(default.get("exclude", [])) | set(ncl.log["include"]))
    if not logs:
        return None
    return {"logs": GoMap((name, custom_log_json(cl)) for name, cl in logs.items())}
