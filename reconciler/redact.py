"""Redaction of URLs before they reach a message, log record or file.

A URL a user typed may carry secrets in its userinfo (``https://user:password@host``) or its query
(``?token=...``); messages that quote a URL show it through :func:`redact_url`, which keeps what tells the
user which URL is meant (scheme, host, port, path) and masks the rest.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

#: The userinfo: from after ``//`` (or the start) to the last ``@`` before the path, query or fragment.
_USERINFO = re.compile(r"(?:(?<=//)|\A)[^/?#]*@")
_QUERY = re.compile(r"[?#].*\Z", re.DOTALL)


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` shown as ``***@`` and any query or fragment as ``?***``.

    >>> redact_url("https://me:s3cret@api.encord.com/v2?token=abc")
    'https://***@api.encord.com/v2?***'
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        return scheme + sep + _QUERY.sub("?***", _USERINFO.sub("***@", rest, count=1))
    return _QUERY.sub("?***", _USERINFO.sub("***@", url, count=1))
