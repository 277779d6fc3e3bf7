"""The exception classes as a caller builds, reads and prints them.

Generated-client code builds ``ApiException(http_resp=...)`` and reads ``path_to_item``; Deribit's
older error shape ``{"error": <code>, "message": ...}`` still appears in the published
description; and whatever a server sends, the exception must build, print and stay redacted.
"""

from __future__ import annotations

import json
import logging

import pytest

from openapi_client import ApiException, ApiKeyError, ApiTypeError, ApiValueError
from openapi_client.exceptions import ServiceException, exception_for_response
from openapi_client.headers import HTTPHeaders
from openapi_client.redaction import REDACTED, RedactingFilter, redact_value
from openapi_client.rest import RESTResponse

TOKEN = "tok-3f9a1c2b7d6e5f40"


def test_type_and_value_errors_name_where_the_bad_item_is() -> None:
    error = ApiTypeError("interval must be a number", path_to_item=["params", 0])
    assert str(error) == "interval must be a number at ['params'][0]"
    assert isinstance(error, TypeError) and error.path_to_item == ["params", 0]
    value_error = ApiValueError("interval must be >= 10", path_to_item=("interval",))
    assert str(value_error) == "interval must be >= 10 at ['interval']"
    assert isinstance(value_error, ValueError)
    assert str(ApiValueError("plain")) == "plain"


def test_key_error_is_a_key_error_with_its_path() -> None:
    with pytest.raises(KeyError) as raised:
        raise ApiKeyError("no such key", path_to_item=["result", "scope"])
    assert isinstance(raised.value, ApiKeyError)
    assert raised.value.path_to_item == ["result", "scope"]


def test_built_from_a_response_object_takes_its_fields() -> None:
    body = {"jsonrpc": "2.0", "error": {"code": 13009, "message": "unauthorized"}}
    response = RESTResponse(
        400, "", json.dumps(body).encode(), HTTPHeaders([("Content-Type", "application/json")])
    )
    error = ApiException(http_resp=response)
    assert (error.status, error.reason) == (400, "Bad Request")
    assert error.error_code == 13009 and error.error_message == "unauthorized"
    assert error.headers is not None and error.headers["content-type"] == "application/json"
    assert error.body == json.dumps(body)
    # Given fields win over the response's.
    overridden = ApiException(status=401, reason="Unauthorized", http_resp=response, body="{}")
    assert (overridden.status, overridden.reason, overridden.body) == (401, "Unauthorized", "{}")
    assert overridden.error_code is None


def test_older_error_shape_with_a_bare_code() -> None:
    body = json.dumps({"error": 10028, "message": "too_many_requests"})
    error = exception_for_response(429, "Too Many Requests", body, None)
    assert error.error_code == 10028
    assert error.error_message == "too_many_requests"
    assert error.retriable
    assert str(error).splitlines()[0] == "Deribit error 10028: too_many_requests"
    bare = exception_for_response(400, "Bad Request", json.dumps({"error": 11050}), None)
    assert (bare.error_code, bare.error_message) == (11050, None)
    assert str(bare).splitlines()[0] == "Deribit error 11050: no message"


def test_decoded_data_given_with_an_echoed_secret_is_redacted() -> None:
    envelope = {"error": {"code": 11050, "message": "bad_request", "data": {"echo": TOKEN}}}
    body = json.dumps(envelope).replace(TOKEN, f"Bearer {TOKEN}")
    data = json.loads(body)
    error = exception_for_response(400, "Bad Request", body, None, data=data)
    assert TOKEN not in json.dumps(error.data)
    assert error.data is not None
    assert error.data["error"]["data"]["echo"] == f"Bearer {REDACTED}"
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_message_too_deep_to_print_is_named_not_raised() -> None:
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    data = {"error": {"code": 11050, "message": nested}}
    error = exception_for_response(400, "Bad Request", "{}", None, data=data)
    assert error.error_message == "<list too large to show>"
    assert str(error).startswith("Deribit error 11050: <list too large to show>")


def test_repr_without_reason_or_code_shows_the_status_alone() -> None:
    error = ServiceException(503, "")
    assert repr(error) == "ServiceException(status=503)"
    assert str(error) == "HTTP 503\nHTTP status: 503"


def test_headers_that_are_not_a_mapping_are_kept_as_given() -> None:
    pairs = [("Retry-After", "1")]
    error = ApiException(429, "Too Many Requests", headers=pairs)  # type: ignore[arg-type]
    assert error.headers is pairs
    assert str(error).startswith("HTTP 429 Too Many Requests")


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # no zone given: read as UTC, long past
        ("Wed, 21 Oct 2099 07:28:00 -0000", None),  # in the future: a positive wait
    ],
)
def test_retry_after_date_without_a_zone_is_read_as_utc(date: str, expected: float | None) -> None:
    error = ApiException(429, "Too Many Requests", headers={"Retry-After": date})
    if expected is None:
        assert error.retry_after is not None and error.retry_after > 365 * 24 * 3600
    else:
        assert error.retry_after == expected


# -- redaction helpers used on exception data ----------------------------------------------------


def test_redact_value_cleans_a_bare_string() -> None:
    assert redact_value(f"Authorization: Bearer {TOKEN}") == f"Authorization: Bearer {REDACTED}"
    assert redact_value(42) == 42


def test_log_record_whose_arguments_do_not_fit_passes_unchanged() -> None:
    record = logging.LogRecord(
        "openapi_client", logging.INFO, __file__, 1, "%d calls", ("x",), None
    )
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("%d calls", ("x",))
