"""`metrics`: the Prometheus `metrics` handler (modules/metrics/metrics.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive


@handler_directive("metrics")
def parse_metrics(h: Helper) -> dict:
    """Syntax::

    metrics [<matcher>] {
        disable_openmetrics
    }
    """
    h.next()
    if h.remaining_args():
        raise h.arg_err()
    out: dict = {"handler": "metrics"}
    while h.next_block(0):
        if h.val() != "disable_openmetrics":
            raise h.errf("unrecognized subdirective %q", h.val())
        out["disable_openmetrics"] = True
    return out
