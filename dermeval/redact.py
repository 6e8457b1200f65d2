"""Credentials out of what is printed: URLs and messages for logs, errors and the dashboard."""

from __future__ import annotations

import re
from urllib.parse import urlparse


def masked(url: str) -> str:
    """A URL (or a message holding URLs) with credentials hidden, for messages and logs: the password of
    ``user:password@``, a lone token before ``@`` and the values of query parameters such as ``token``."""
    url = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", url)
    url = re.sub(r"(://)[^:/@\s]{16,}@", r"\1***@", url)  # https://<token>@host
    return re.sub(r"([?&](?:token|key|api_key|apikey|secret|password|pwd|sig|signature|access_token)=)[^&\s]+",
                  r"\1***", url, flags=re.I)


def host_only(url: str) -> str:
    """``scheme://host[:port]`` of a URL whose path may itself be the secret (a webhook)."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname or ''}{':' + str(parsed.port) if parsed.port else ''}/..."
