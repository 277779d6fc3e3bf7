"""Keep credentials out of everything the library writes: log lines, reprs and exception text."""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "SENSITIVE_KEYS", "RedactingFilter", "redact"]

REDACTED = "***"

#: Query parameters and JSON members whose values are credentials.
SENSITIVE_KEYS = (
    "access_token",
    "refresh_token",
    "client_secret",
    "signature",
    "sig",
    "password",
)

_KEYS = "|".join(SENSITIVE_KEYS)
# key=value in a query string or a deri-hmac-sha256 header; "key": "value" in JSON;
# and the credential part of an Authorization header.
_QUERY_OR_HEADER = re.compile(rf"(?i)(\b(?:{_KEYS})=)[^&\s,;)\"']+")
_JSON = re.compile(rf"(?i)(\"(?:{_KEYS})\"\s*:\s*\")[^\"]*")
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """Return ``text`` with every credential value replaced by ``***``."""
    if not text:
        return text
    text = _QUERY_OR_HEADER.sub(rf"\g<1>{REDACTED}", text)
    text = _JSON.sub(rf"\g<1>{REDACTED}", text)
    return _AUTHORIZATION.sub(rf"\g<1> {REDACTED}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from a record's formatted message.

    Installed on urllib3's connection-pool logger, whose debug lines include request targets
    (and so the query string of ``public/auth``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
