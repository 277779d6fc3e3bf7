"""JSON-RPC on a Deribit WebSocket: requests as text, error answers as the library's exceptions.

Pure functions, shared by the session core and its drivers: no I/O, no clock, no threads.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from openapi_client.exceptions import ApiException, ApiValueError, exception_for_response
from openapi_client.redaction import redact, redacted_exception

__all__ = [
    "ERROR_STATUS",
    "MAX_REQUEST_BYTES",
    "REQUEST_HEAD",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "Data",
    "answer_error",
    "caused_by",
    "check_size",
    "error_code",
    "preview",
    "request_tail",
]

#: A message as received: text frames decoded, binary frames as bytes.
Data = Union[str, bytes]

#: The status of the :class:`ApiException` for a JSON-RPC error answered on the socket: the HTTP
#: status Deribit gives the same error over HTTP.
ERROR_STATUS = 400
#: Deribit refuses client messages above 32 kB (-32600 "request entity too large").
MAX_REQUEST_BYTES = 32 * 1024
#: Deribit's error for an exhausted credit pool; on a WebSocket it also ends the connection.
TOO_MANY_REQUESTS = 10028
#: Deribit's error for a token it does not accept (expired, revoked, or of another connection).
UNAUTHORIZED = 13009

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_encode = _ENCODER.encode

#: What every request starts with, before its id.
REQUEST_HEAD = '{"jsonrpc":"2.0","id":'
#: ``,"method":"<method>","params":`` for each method seen: the part of a request between its
#: id and its parameters, encoded once (it is the same for every call of a method). Bounded.
_HEADS: dict[str, str] = {}
_MAX_HEADS = 256

#: Short previews of what a server sent, for log lines.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = _PREVIEW.maxother = 100

E = TypeVar("E", bound=BaseException)


def request_tail(method: str, params: Mapping[str, Any]) -> str:
    """A request's text after its id: ``,"method":"...","params":{...}}``. A request is
    ``REQUEST_HEAD + str(id) + tail``, so that the parameters are encoded once, before an id is
    given (the part naming the method is encoded once per method).

    :raises ApiValueError: ``params`` cannot be JSON (NaN, an object of another type).
    """
    head = _HEADS.get(method)
    if head is None:
        head = f',"method":{_encode(method)},"params":'
        if len(_HEADS) < _MAX_HEADS:
            _HEADS[method] = head
    try:
        return f"{head}{_encode(params)}}}"
    except (TypeError, ValueError) as error:
        raise ApiValueError(
            f"the parameters of {method} cannot be sent as JSON ({error})"
        ) from None


def check_size(text: str, method: str) -> None:
    """:raises ApiValueError: the request is larger than Deribit accepts
    (:data:`MAX_REQUEST_BYTES`; the text is ASCII, the encoder escapes the rest)."""
    if len(text) > MAX_REQUEST_BYTES:
        raise ApiValueError(
            f"the request for {method} is {len(text)} bytes; Deribit accepts at most "
            f"{MAX_REQUEST_BYTES} on a WebSocket"
        )


def error_code(message: Mapping[str, Any]) -> Any:
    """The ``code`` of a message's ``error`` member (the member itself when it is no object)."""
    error = message.get("error")
    return error.get("code") if isinstance(error, dict) else error


def answer_error(message: Mapping[str, Any], raw: Data) -> ApiException:
    """The exception for a JSON-RPC error answer, with the envelope as data (so ``error_code``,
    ``error_message`` and ``error_data`` are set) and the status Deribit's HTTP API gives the same
    error: :data:`ERROR_STATUS`, or 429 (``TooManyRequestsException``) for 10028."""
    body = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if error_code(message) == TOO_MANY_REQUESTS:
        return exception_for_response(429, "Too Many Requests", body, {}, dict(message))
    return exception_for_response(ERROR_STATUS, "Bad Request", body, {}, dict(message))


def caused_by(error: E, cause: BaseException | None) -> E:
    """``error`` with ``cause`` chained (redacted: see
    :func:`~openapi_client.redaction.redacted_exception`). Raise it outside any ``except`` block,
    so that Python does not chain the unredacted exception being handled as its context."""
    error.__cause__ = None if cause is None else redacted_exception(cause)
    error.__suppress_context__ = True
    return error


def preview(value: Any) -> str:
    """What a server sent, shortened and redacted, for a log line."""
    try:
        return redact(_PREVIEW.repr(value))
    except Exception:  # e.g. an integer too long to print
        return f"<{type(value).__name__}>"
