"""The library's exceptions, and the one place that turns a response into one.

Every failure a caller can see is an :class:`OpenApiException`:

* :class:`ApiTypeError` / :class:`ApiValueError`: a call was refused before any request;
* :class:`ApiException`: the request was made and failed. ``status`` is the HTTP status, or ``0``
  when no HTTP response arrived (:class:`ApiTransportError` and its subclasses). When Deribit
  answered with a JSON-RPC error, ``error_code``, ``error_message`` and ``error_data`` carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from openapi_client.redaction import redact, redact_value

__all__ = [
    "FORBIDDEN",
    "INVALID_CREDENTIALS",
    "MUST_BE_WEBSOCKET",
    "RETRIABLE_ERROR_CODES",
    "RETRIABLE_STATUSES",
    "ApiAttributeError",
    "ApiCallTimeoutError",
    "ApiConnectionError",
    "ApiException",
    "ApiKeyError",
    "ApiMissingDependencyError",
    "ApiProtocolError",
    "ApiResponseTooLargeError",
    "ApiSSLError",
    "ApiTimeoutError",
    "ApiTransportError",
    "ApiTypeError",
    "ApiUnknownSettingError",
    "ApiValueError",
    "BadRequestException",
    "ForbiddenException",
    "NotFoundException",
    "OpenApiException",
    "ServiceException",
    "TooManyRequestsException",
    "UnauthorizedException",
    "exception_for_response",
    "is_transient",
]

PathToItem = Optional[Sequence[Union[str, int]]]

#: Deribit's JSON-RPC error codes that report a transient condition (FACTS: "retry? yes").
RETRIABLE_ERROR_CODES = frozenset(
    {10028, 10040, 10041, 10047, 10066, 11051, 11094, 13028, 13888}
)
#: HTTP statuses retried when the body carries no JSON-RPC error code.
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_BODY_PREVIEW = 500

#: What to do about an error code, where the code alone does not say.
MUST_BE_WEBSOCKET = 10030
INVALID_CREDENTIALS = 13004
FORBIDDEN = 13021
_HINTS: dict[int, str] = {
    INVALID_CREDENTIALS: (
        "Deribit refused the API key or its signature, and asking again would be refused the "
        "same way: check the client id and the client secret or private key (a private key "
        "must match the public key registered for that client id), and for a signature this "
        "machine's clock (a signed timestamp is valid for 60 s)"
    ),
    FORBIDDEN: (
        "the token lacks a permission this method needs: check the API key's maximum scope "
        "on Deribit and Configuration.scope"
    ),
    MUST_BE_WEBSOCKET: (
        "this method works only over a WebSocket connection on today's Deribit: call it on a "
        "session, SessionManagementApi(openapi_client.websocket.WebSocketApiClient(...)) "
        "(see docs/WebSocket.md); over HTTP only scope='account' cancel-on-disconnect works"
    ),
}


def _render_path(path_to_item: PathToItem) -> str:
    return "".join(f"[{item!r}]" for item in path_to_item or ())


class OpenApiException(Exception):
    """The base class of every exception this library raises."""


class ApiTypeError(OpenApiException, TypeError):
    """An argument has the wrong type; raised before any request is made."""

    def __init__(
        self,
        msg: str,
        path_to_item: PathToItem = None,
        valid_classes: Sequence[type] | None = None,
        key_type: bool | None = None,
    ) -> None:
        self.path_to_item = path_to_item
        self.valid_classes = valid_classes
        self.key_type = key_type
        if path_to_item:
            msg = f"{msg} at {_render_path(path_to_item)}"
        super().__init__(msg)


class ApiValueError(OpenApiException, ValueError):
    """An argument or setting has a wrong value; raised before any request is made."""

    def __init__(self, msg: str, path_to_item: PathToItem = None) -> None:
        self.path_to_item = path_to_item
        if path_to_item:
            msg = f"{msg} at {_render_path(path_to_item)}"
        super().__init__(msg)


class ApiAttributeError(OpenApiException, AttributeError):
    """An attribute that does not exist was read."""

    def __init__(self, msg: str, path_to_item: PathToItem = None) -> None:
        self.path_to_item = path_to_item
        super().__init__(msg)


class ApiUnknownSettingError(ApiValueError, ApiAttributeError):
    """A setting name that does not exist (a typo such as ``verify_sll``) was assigned.

    Both an :class:`ApiValueError` (a wrong setting) and an ``AttributeError`` (what Python raises
    for an attribute that cannot be set)."""

    def __init__(self, msg: str) -> None:
        ApiValueError.__init__(self, msg)


class ApiMissingDependencyError(ApiValueError, ImportError):
    """A feature needs a package that is not installed (an optional extra such as
    ``openapi-client-deribit-session[asymmetric]``); the message names the extra to install.

    Both an :class:`ApiValueError` (the setting cannot be used as things are) and an
    ``ImportError`` (what importing the feature's module raises)."""

    def __init__(self, msg: str) -> None:
        ApiValueError.__init__(self, msg)


class ApiKeyError(OpenApiException, KeyError):
    """A key that does not exist was looked up."""

    def __init__(self, msg: str, path_to_item: PathToItem = None) -> None:
        self.path_to_item = path_to_item
        super().__init__(msg)


class ApiException(OpenApiException):
    """A request was made and did not succeed.

    :param status: HTTP status, or ``0`` when no response arrived.
    :param reason: HTTP reason phrase, or what went wrong on the way.
    :param http_resp: a response object with ``status``, ``reason``, ``data`` and ``getheaders()``
        (generated clients pass one); its fields fill those not given.
    :param body: the response body as text.
    :param headers: the response headers.
    :param hint: what to do about it, in place of the general advice for the error code (for
        example the permission a refused method needs).
    """

    def __init__(
        self,
        status: int | None = None,
        reason: str | None = None,
        http_resp: Any = None,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        hint: str | None = None,
    ) -> None:
        if http_resp is not None:
            status = http_resp.status if status is None else status
            reason = http_resp.reason if reason is None else reason
            if body is None:
                raw = http_resp.data
                body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if headers is None:
                headers = http_resp.getheaders()
        self.status: int = status or 0
        self.hint = redact(hint) if hint else None
        # Everything kept is redacted: a server may echo a credential anywhere.
        self.reason: str = redact(reason or "")
        clean_body = redact(body) if body else body
        self.body: str | None = clean_body
        self.headers: Mapping[str, str] | None = _redacted_headers(headers)
        if data is not None and clean_body != body:
            data = redact_value(data)
        #: The decoded JSON body, when it was a JSON object.
        self.data: dict[str, Any] | None = (
            data if data is not None else _decode_object(clean_body)
        )
        error = self.data.get("error") if self.data else None
        self.error_code: int | None = None
        self.error_message: str | None = None
        self.error_data: Any = None
        if isinstance(error, dict):
            code = error.get("code")
            self.error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            message = error.get("message")
            self.error_message = _text(message) if message is not None else None
            self.error_data = redact_value(error.get("data"))
        elif isinstance(error, int) and not isinstance(error, bool):
            # The published description's older shape: {"error": <code>, "message": "..."}.
            self.error_code = error
            message = self.data.get("message") if self.data else None
            self.error_message = _text(message) if message is not None else None
        super().__init__(self.status, self.reason)

    @property
    def retriable(self) -> bool:
        """Whether the failure is transient, as the default retry policy judges it: no response
        (except a TLS failure), one of Deribit's retriable codes, or HTTP 429/500/502/503/504."""
        return is_transient(self)

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked the client to wait (``Retry-After``), if it said so."""
        if not self.headers:
            return None
        value = self.headers.get("Retry-After") or self.headers.get("retry-after")
        if not isinstance(value, str):
            return None
        try:
            seconds = float(value)
        except ValueError:
            return _http_date_delay(value)
        # NaN compares false; an infinite wait is reported as is (the retry policy refuses it).
        return seconds if seconds >= 0 else None

    def _headline(self) -> str:
        if self.error_code is not None:
            text = f"Deribit error {self.error_code}: {self.error_message or 'no message'}"
            if self.error_data is not None:
                text += f" ({_compact(self.error_data)})"
            hint = self.hint or _HINTS.get(self.error_code)
            return f"{text}; {hint}" if hint else text
        if self.status == 0:
            return self.reason or "no response"
        return f"HTTP {self.status} {self.reason}".rstrip()

    def __str__(self) -> str:
        lines = [redact(self._headline())]
        if self.status:
            lines.append(f"HTTP status: {self.status} {self.reason}".rstrip())
        if self.body and self.error_code is None:
            preview = self.body[:_BODY_PREVIEW] + ("..." if len(self.body) > _BODY_PREVIEW else "")
            lines.append(f"HTTP response body: {redact(preview)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        fields = [f"status={self.status}"]
        if self.error_code is not None:
            fields.append(f"error_code={self.error_code}")
            fields.append(f"error_message={self.error_message!r}")
        elif self.reason:
            fields.append(f"reason={redact(self.reason)!r}")
        return f"{type(self).__name__}({', '.join(fields)})"


class BadRequestException(ApiException):
    """HTTP 400: Deribit's usual status for a JSON-RPC error."""


class UnauthorizedException(ApiException):
    """HTTP 401."""


class ForbiddenException(ApiException):
    """HTTP 403."""


class NotFoundException(ApiException):
    """HTTP 404."""


class TooManyRequestsException(ApiException):
    """HTTP 429: too many requests or connections; ``retry_after`` says how long to wait."""


class ServiceException(ApiException):
    """HTTP 5xx: the server or its edge failed."""


class ApiTransportError(ApiException):
    """No HTTP response arrived (``status == 0``); the cause is chained as ``__cause__``."""

    def __init__(self, reason: str) -> None:
        super().__init__(status=0, reason=reason)


class ApiConnectionError(ApiTransportError):
    """The connection could not be made, or was reset or closed by the other side."""


class ApiTimeoutError(ApiTransportError):
    """The server did not connect or answer in time: within the connect or read timeout
    (``request_timeout``), or within the whole attempt's ``attempt_timeout``."""


class ApiCallTimeoutError(ApiTimeoutError):
    """The call as a whole ran out of ``Configuration.call_timeout`` (attempts, backoff and the
    rate limiter's waits together); the last attempt's error, if any, is chained as
    ``__cause__``. Never retried: it is the end of the call."""


class ApiSSLError(ApiConnectionError):
    """TLS failed, for example because the server's certificate could not be verified."""


class ApiProtocolError(ApiTransportError):
    """The server broke HTTP, for example by closing the connection mid-body."""


class ApiResponseTooLargeError(ApiException):
    """The response was larger than ``Configuration.max_response_size``; refused while it was
    being read (or as soon as its declared length said so). ``status`` is the HTTP status."""


_BY_STATUS: dict[int, type[ApiException]] = {
    400: BadRequestException,
    401: UnauthorizedException,
    403: ForbiddenException,
    404: NotFoundException,
    429: TooManyRequestsException,
}


def is_transient(
    error: ApiException,
    statuses: frozenset[int] = RETRIABLE_STATUSES,
    error_codes: frozenset[int] = RETRIABLE_ERROR_CODES,
) -> bool:
    """The one rule of transience: no response at all (but for a TLS failure, which would fail
    the same way again), else a retriable JSON-RPC code, else a retriable HTTP status."""
    if error.status == 0:
        return not isinstance(error, ApiSSLError)
    if error.error_code is not None:
        return error.error_code in error_codes
    return error.status in statuses


def exception_for_response(
    status: int,
    reason: str,
    body: str | None,
    headers: Mapping[str, str] | None,
    data: dict[str, Any] | None = None,
) -> ApiException:
    """The exception for an HTTP response that is not a success, in its subclass by status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServiceException if 500 <= status <= 599 else ApiException
    return cls(status, reason, body=body, headers=headers, data=data)


def _decode_object(body: str | None) -> dict[str, Any] | None:
    if not body or body[0] != "{":
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python can follow
        return None
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str:
    """A JSON value as redacted text, whatever its nesting."""
    if isinstance(value, str):
        return redact(value)
    try:
        return redact(str(value))
    except (RecursionError, ValueError):  # deeply nested, or an int too long to print
        return f"<{type(value).__name__} too large to show>"


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_text(item)}" for key, item in value.items())
    return _text(value)


def _redacted_headers(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``headers`` as given, or a redacted copy when a value carries a credential."""
    if not headers:
        return headers
    try:
        items = list(headers.items())
    except Exception:  # not a mapping we can read: keep it as given
        return headers
    if all(not isinstance(value, str) or redact(value) == value for _, value in items):
        return headers
    from openapi_client.headers import HTTPHeaders

    cleaned = HTTPHeaders()
    for name, value in items:
        cleaned.add(name, redact(value) if isinstance(value, str) else value)
    return cleaned


def _http_date_delay(value: str) -> float | None:
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError, IndexError):  # not a date Python can hold
        return None
