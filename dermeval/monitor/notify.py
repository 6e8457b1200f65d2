"""Alerts leave the monitor: printed, and POSTed as JSON to ``monitor.webhook_url`` when one is set.

A failing channel never loses an alert: the store already holds it when these run.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

from dermeval.params import MonitorParams
from dermeval.redact import host_only


def post(url: str, payload: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10):
            pass
    except OSError as exc:  # an alert channel failing must not lose the stored alert
        print(f"warning: alert webhook {host_only(url)} failed: {type(exc).__name__}", file=sys.stderr)


def notify(alerts: list[dict[str, Any]], batch_id: str, p: MonitorParams) -> None:
    for a in alerts:
        print(f"ALERT [{batch_id}] {a['message']}", file=sys.stderr)
        if p.webhook_url:
            post(p.webhook_url, {"batch": batch_id, **{k: a[k] for k in ("kind", "model", "feature", "message")}})
