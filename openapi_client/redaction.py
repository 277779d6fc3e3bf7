"""Keep credentials out of everything the library writes: log lines, reprs and exception text.

Two nets, applied together by :func:`redact`:

* by shape: the values of credential-named query parameters and JSON members
  (``client_secret=...``, ``"refresh_token": "..."``) and the credential of an ``Authorization``
  header;
* by value: every secret the library has been given or has obtained (access and refresh tokens,
  client secrets, signatures), registered with :func:`register_secret`, wherever it appears and in
  whatever form a server may echo it: as is, URL-encoded, or escaped inside a JSON string.

Exceptions that are not the library's own (a dependency's, carrying text a server sent) go
through :func:`redacted_exception` before they are chained to the library's or logged, so that a
printed traceback shows no credential either.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from re import Pattern
from typing import Any
from urllib.parse import quote, quote_plus

from openapi_client.locks import new_lock

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SENSITIVE_KEYS",
    "RedactedError",
    "RedactingFilter",
    "forget_secrets",
    "install_filter",
    "redact",
    "redact_value",
    "redacted_exception",
    "register_credentials_in",
    "register_secret",
]

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

#: Shorter values are not registered: replacing them everywhere would garble ordinary text, and
#: no credential Deribit issues or accepts is that short.
MIN_SECRET_LENGTH = 8

#: The registry keeps the most recent secrets; older ones (long-expired tokens, one-off
#: signatures) drop out so that redaction stays cheap in a process that runs for weeks.
_MAX_SECRETS = 256

_KEYS = "|".join(SENSITIVE_KEYS)
# key=value in a query string or a deri-hmac-sha256 header; "key": "value" in JSON;
# and the credential part of an Authorization header.
_QUERY_OR_HEADER = re.compile(rf"(?i)(\b(?:{_KEYS})=)[^&\s,;)\"']+")
_JSON = re.compile(rf"(?i)(\"(?:{_KEYS})\"\s*:\s*\")[^\"]*")
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


class _Registry:
    """The known secrets, and one pattern matching any of them in any echoed form."""

    def __init__(self) -> None:
        self._lock = new_lock()
        self._secrets: OrderedDict[str, None] = OrderedDict()
        self._pattern: Pattern[str] | None = None
        self._stale = False

    def add(self, secret: str) -> None:
        with self._lock:
            if secret in self._secrets:
                self._secrets.move_to_end(secret)
                return
            self._secrets[secret] = None
            while len(self._secrets) > _MAX_SECRETS:
                self._secrets.popitem(last=False)
            self._stale = True

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None
            self._stale = False

    def pattern(self) -> Pattern[str] | None:
        if not self._stale:
            return self._pattern
        with self._lock:
            forms = set()
            for secret in self._secrets:
                forms.update(_echoed_forms(secret))
            # Longest first, so that a longer form wins over a prefix of it.
            alternatives = sorted(forms, key=len, reverse=True)
            self._pattern = (
                re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
            )
            self._stale = False
            return self._pattern


def _echoed_forms(secret: str) -> list[str]:
    """The ways a server or a log may write ``secret``: as is, URL-encoded, JSON-escaped."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="-._~"),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return [form for form in forms if len(form) >= MIN_SECRET_LENGTH]


_REGISTRY = _Registry()


def register_secret(secret: Any) -> None:
    """Redact ``secret`` from every text :func:`redact` cleans from now on.

    Values that are not strings, or shorter than :data:`MIN_SECRET_LENGTH`, are ignored.
    The library registers the credentials it is given and the tokens and signatures it makes.
    """
    if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
        _REGISTRY.add(secret)


def register_credentials_in(data: Mapping[str, Any]) -> None:
    """Register the credentials a JSON object carries in its :data:`SENSITIVE_KEYS` members (a
    ``public/auth`` result's tokens), as soon as it is read and before anything renders it."""
    for key in SENSITIVE_KEYS:
        register_secret(data.get(key))


def forget_secrets() -> None:
    """Empty the registry of known secrets (for tests; the shape-based rules stay)."""
    _REGISTRY.clear()


def redact(text: str) -> str:
    """Return ``text`` with every credential value replaced by ``***``."""
    if not text:
        return text
    pattern = _REGISTRY.pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _QUERY_OR_HEADER.sub(rf"\g<1>{REDACTED}", text)
    text = _JSON.sub(rf"\g<1>{REDACTED}", text)
    return _AUTHORIZATION.sub(rf"\g<1> {REDACTED}", text)


def redact_value(value: Any) -> Any:
    """``value`` with every string in it redacted: a string, or lists and dicts of them
    (JSON-shaped data), walked without recursion so that no nesting depth can break it."""
    if isinstance(value, str):
        return redact(value)
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list)):
                copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, copy))
                item = copy
            elif isinstance(item, str):
                item = redact(item)
            if isinstance(target, dict):
                target[redact(key) if isinstance(key, str) else key] = item
            else:
                target.append(item)
    return root


#: The most exceptions of one chain (causes and contexts) that are looked at.
_MAX_CHAIN = 32


class RedactedError(Exception):
    """Stands in for an exception whose text, or that of an exception chained to it, held a
    credential: its message is the original's type and text with the credential replaced, its
    traceback the original's, its causes redacted alike."""


def redacted_exception(error: BaseException) -> BaseException:
    """``error`` itself when no text in it or in its chain (``__cause__``, ``__context__``) holds
    a credential; otherwise a :class:`RedactedError` that says the same without it."""
    return _redacted_chain(error, {})


def _redacted_chain(error: BaseException, done: dict[int, BaseException]) -> BaseException:
    known = done.get(id(error))
    if known is not None:
        return known
    done[id(error)] = error  # a cycle back to this exception keeps it as it is
    if len(done) > _MAX_CHAIN:
        return error
    cause = error.__cause__
    context = error.__context__
    clean_cause = None if cause is None else _redacted_chain(cause, done)
    clean_context = None if context is None else _redacted_chain(context, done)
    text = _text_of(error)
    cleaned = redact(text)
    if cleaned == text and clean_cause is cause and clean_context is context:
        return error
    kind = type(error)
    stand_in = RedactedError(f"{kind.__module__}.{kind.__qualname__}: {cleaned}")
    stand_in.__cause__ = clean_cause
    stand_in.__context__ = clean_context
    stand_in.__suppress_context__ = error.__suppress_context__
    stand_in.__traceback__ = error.__traceback__
    done[id(error)] = stand_in
    return stand_in


def _text_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception whose __str__ fails: its type says enough
        return f"<{type(error).__name__}>"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from a record: its formatted message, the
    exception it carries (and that exception's chain) and its stack text.

    Installed on urllib3's connection-pool logger, whose debug lines include request targets
    (and so the query string of ``public/auth``), and on the library's own loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            error = redacted_exception(exc_info[1])
            if error is not exc_info[1]:
                record.exc_info = (type(error), error, error.__traceback__)
                record.exc_text = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_filter(logger: logging.Logger) -> logging.Logger:
    """Add a :class:`RedactingFilter` to ``logger`` (once) and return the logger."""
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
