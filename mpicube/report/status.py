"""Tell the facility's run processor how the job ended, when it asked to be told.

The run processor sets ``JID_UPDATE_COUNTERS`` to a URL; the job POSTs the JSON list
``[{"key": "<b>Cube </b>", "value": "Done"}]`` on success, or a ``Failed: <reason>`` value.
The report shows values as HTML, so ``<``, ``>`` and ``&`` in the reason are escaped.
A POST that fails is logged and changes nothing else.
"""

from __future__ import annotations

import html
import json
import logging
import os
import urllib.error
import urllib.request

ENV_URL = "JID_UPDATE_COUNTERS"
STATUS_KEY = "<b>Cube </b>"
MAX_REASON_CHARS = 300
TIMEOUT_SECONDS = 10.0

log = logging.getLogger("mpicube")


def failed_value(reason: str) -> str:
    """Return ``Failed: <reason>`` with the reason cut to one line and HTML-escaped."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    one_line = lines[0] if lines else "unknown reason"
    if len(one_line) > MAX_REASON_CHARS:
        one_line = one_line[: MAX_REASON_CHARS - 3] + "..."
    return f"Failed: {html.escape(one_line, quote=False)}"


def post_status(value: str, url: str | None = None) -> bool:
    """POST the status ``value`` to ``url`` (default: $JID_UPDATE_COUNTERS).

    Returns True if the server accepted it, False if there is no URL or the POST failed
    (which is logged as a warning, never raised).
    """
    url = url if url is not None else os.environ.get(ENV_URL)
    if not url:
        return False
    body = json.dumps([{"key": STATUS_KEY, "value": value}]).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("could not post the status %r to %s: %s", value, url, exc)
        return False
    return True
