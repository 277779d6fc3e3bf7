"""The table of transport failures (``openapi_client.net.errors``), row by row, without sockets.

Each failure is built as the socket, ``ssl``, ``http.client`` or urllib3 raises it (wrapped as
urllib3 1.26 and 2.x wrap it); the library's exception is chosen by the types in the chain, never
by the text, except for http.client's refusal of too many header lines, which has no type of its
own. Behaviour over real sockets is in test_transport, test_tls, test_hostile_* and
test_http_header_limits; this file pins each row and the order between them.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
from typing import Any, NamedTuple

import pytest
from test_hostile_lifecycle import child_env
from urllib3 import exceptions as urllib3_errors
from urllib3.util.ssl_match_hostname import CertificateError

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiSSLError,
    ApiTimeoutError,
    ApiTransportError,
)
from openapi_client.net.errors import CONNECT, EXCHANGE, TLS_HANDSHAKE, transport_error

WHERE = "exchange.example:443"


class Timeouts(NamedTuple):
    connect: float
    read: float


TIMEOUTS = Timeouts(3.0, 7.5)


def raised_while_handling(error: BaseException, handled: BaseException) -> BaseException:
    """``error`` as Python leaves it when raised in an ``except`` block of ``handled`` (its
    ``__context__``), as urllib3 1.26 raises NewConnectionError."""
    try:
        try:
            raise handled
        except BaseException:
            raise error  # noqa: B904 - the implicit context is the point
    except BaseException as caught:
        return caught


def caused_by(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` as ``raise error from cause`` leaves it."""
    error.__cause__ = cause
    return error


def certificate_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def nonsense(text: str) -> str:
    """Text no row could match: the rows go by type."""
    return f"{text} (words that say nothing)"


ROWS: list[tuple[str, BaseException, str, type[ApiTransportError], str]] = [
    # (case, failure, stage, exception, what the message says)
    (
        "untrusted certificate, wrapped by urllib3",
        urllib3_errors.SSLError(certificate_error(20, "unable to get local issuer certificate")),
        EXCHANGE, ApiSSLError, ("certificate verification failed for exchange.example:443 "
        "(certificate verify failed: unable to get local issuer certificate). If the server "
        "uses a private CA, point Configuration.ssl_ca_cert"),
    ),
    (
        "certificate for another host name",
        certificate_error(62, nonsense("mismatch")), TLS_HANDSHAKE, ApiSSLError,
        "Connect by a name the certificate covers",
    ),
    (
        "certificate for another IP address",
        certificate_error(64, nonsense("mismatch")), TLS_HANDSHAKE, ApiSSLError,
        "Connect by a name the certificate covers",
    ),
    (
        "urllib3's check of assert_hostname, wrapped",
        urllib3_errors.SSLError(CertificateError(nonsense("no"))), EXCHANGE, ApiSSLError,
        "Connect by a name the certificate covers",
    ),
    (
        "TLS closed by the server",
        ssl.SSLEOFError(8, nonsense("eof")), TLS_HANDSHAKE, ApiConnectionError,
        "exchange.example:443 closed the connection during the TLS handshake",
    ),
    (
        "another TLS failure",
        urllib3_errors.SSLError(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version")),
        EXCHANGE, ApiSSLError, "TLS handshake with exchange.example:443 failed (",
    ),
    (
        "urllib3's own TLS refusal",
        urllib3_errors.SSLError("Client private key is encrypted, password is required"),
        EXCHANGE, ApiSSLError, "failed (Client private key is encrypted, password is required)",
    ),
    (
        "the proxy",
        urllib3_errors.ProxyError(nonsense("proxy"), ConnectionRefusedError(111, "refused")),
        EXCHANGE, ApiConnectionError, "the proxy refused or failed the connection",
    ),
    (
        "a name that does not resolve (urllib3 1.26: the lookup's error is only the context)",
        raised_while_handling(
            urllib3_errors.NewConnectionError(None, nonsense("new")),  # type: ignore[arg-type]
            socket.gaierror(-3, nonsense("dns")),
        ),
        EXCHANGE, ApiConnectionError, "(the host name could not be resolved); check",
    ),
    (
        "refused while connecting (urllib3 1.26)",
        raised_while_handling(
            urllib3_errors.NewConnectionError(None, nonsense("new")),  # type: ignore[arg-type]
            ConnectionRefusedError(111, nonsense("refused")),
        ),
        EXCHANGE, ApiConnectionError, ("could not connect to exchange.example:443 (connection "
        "refused); check Configuration.host and the network"),
    ),
    (
        "urllib3's connect timeout",
        urllib3_errors.ConnectTimeoutError(nonsense("connect")), EXCHANGE, ApiTimeoutError,
        "connecting to exchange.example:443 timed out after 3 s",
    ),
    (
        "a connect timeout on the direct path",
        socket.timeout(nonsense("timed out")), CONNECT, ApiTimeoutError,
        "connecting to exchange.example:443 timed out after 3 s",
    ),
    (
        "no route, on the direct path",
        OSError(113, "No route to host"), CONNECT, ApiConnectionError,
        "could not connect to exchange.example:443 (no route to host)",
    ),
    (
        "refused, on the direct path",
        ConnectionRefusedError(111, nonsense("refused")), CONNECT, ApiConnectionError,
        "(connection refused)",
    ),
    (
        "urllib3's read timeout in the TLS handshake (no request begun yet)",
        urllib3_errors.ReadTimeoutError(None, None, nonsense("read")),  # type: ignore[arg-type]
        TLS_HANDSHAKE, ApiTimeoutError,
        "connecting to exchange.example:443 timed out after 3 s (TLS handshake)",
    ),
    (
        "a reset in the TLS handshake",
        ConnectionResetError(104, nonsense("reset")), TLS_HANDSHAKE, ApiConnectionError,
        "closed the connection during the TLS handshake",
    ),
    (
        "urllib3's read timeout",
        urllib3_errors.ReadTimeoutError(None, None, nonsense("read")),  # type: ignore[arg-type]
        EXCHANGE, ApiTimeoutError, "did not answer within 7.5 s (read timeout)",
    ),
    (
        "a read timeout",
        socket.timeout(nonsense("timed out")), EXCHANGE, ApiTimeoutError,
        "did not answer within 7.5 s (read timeout)",
    ),
    (
        "a line too long, wrapped by urllib3",
        urllib3_errors.ProtocolError(nonsense("aborted"), http.client.LineTooLong("header line")),
        EXCHANGE, ApiProtocolError, ("sent a line longer than 65536 bytes (got more than 65536 "
        "bytes when reading header line); refused"),
    ),
    (
        "too many header lines: the one text match",
        urllib3_errors.ProtocolError(
            nonsense("aborted"), http.client.HTTPException("got more than 100 headers")
        ),
        EXCHANGE, ApiProtocolError, ("sent 99 header lines or more in one head (got more than "
        "100 headers); refused"),
    ),
    (
        "a cut-short body, wrapped by urllib3",
        urllib3_errors.ProtocolError(nonsense("broken"), http.client.IncompleteRead(b"", 5)),
        EXCHANGE, ApiProtocolError, "the response from exchange.example:443 was cut short",
    ),
    (
        "urllib3's own short-body error",
        urllib3_errors.IncompleteRead(0, 5), EXCHANGE, ApiProtocolError, "was cut short",
    ),
    (
        "closed without an answer",
        urllib3_errors.ProtocolError(nonsense("aborted"), http.client.RemoteDisconnected("x")),
        EXCHANGE, ApiConnectionError, ("exchange.example:443 closed the connection without "
        "answering"),
    ),
    (
        "reset",
        urllib3_errors.ProtocolError(nonsense("aborted"), ConnectionResetError(104, "x")),
        EXCHANGE, ApiConnectionError, ("the connection to exchange.example:443 was reset by the "
        "server"),
    ),
    (
        "broken pipe",
        BrokenPipeError(32, nonsense("pipe")), EXCHANGE, ApiConnectionError, "was reset",
    ),
    (
        "refused, not while connecting (the WebSocket session's opening)",
        ConnectionRefusedError(111, nonsense("refused")), EXCHANGE, ApiConnectionError,
        "exchange.example:443 refused the connection",
    ),
    (
        "anything else",
        urllib3_errors.ProtocolError(nonsense("aborted"), http.client.BadStatusLine("x")),
        EXCHANGE, ApiProtocolError, ("the exchange with exchange.example:443 failed "
        "(BadStatusLine)"),
    ),
]

if hasattr(urllib3_errors, "NameResolutionError"):  # urllib3 2.x
    ROWS.append((
        "a name that does not resolve (urllib3 2.x)",
        caused_by(
            urllib3_errors.NameResolutionError(
                "exchange.example", None, socket.gaierror(-2, "x")  # type: ignore[arg-type]
            ),
            socket.gaierror(-2, nonsense("dns")),
        ),
        EXCHANGE, ApiConnectionError, "(the host name could not be resolved); check",
    ))


@pytest.mark.parametrize(
    ("failure", "stage", "expected", "says"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_each_row(
    failure: BaseException, stage: str, expected: type[ApiTransportError], says: str
) -> None:
    error = transport_error(failure, WHERE, TIMEOUTS, stage)
    assert type(error) is expected
    assert says in str(error)
    assert error.status == 0


def test_another_http_exception_is_not_taken_for_too_many_header_lines() -> None:
    error = transport_error(http.client.HTTPException("got less than we hoped"), WHERE, TIMEOUTS)
    assert type(error) is ApiProtocolError
    assert str(error) == "the exchange with exchange.example:443 failed (HTTPException)"


def test_without_timeouts_the_messages_say_the_timeout() -> None:
    error = transport_error(socket.timeout(), WHERE)
    assert str(error) == "exchange.example:443 did not answer within the timeout (read timeout)"


def test_a_chain_that_loops_ends() -> None:
    first, second = OSError("first"), OSError("second")
    first.__cause__, second.__cause__ = second, first
    assert "failed (OSError)" in str(transport_error(first, WHERE))


def test_a_suppressed_context_is_not_followed() -> None:
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except OSError:
            raise ValueError("unrelated") from None
    except ValueError as caught:
        error = transport_error(caught, WHERE)
    assert str(error) == "the exchange with exchange.example:443 failed (ValueError)"


def test_the_table_does_not_import_urllib3() -> None:
    """The WebSocket session and asyncio clients map their failures without loading urllib3."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            ("import socket, sys\n"
            "from openapi_client.net.errors import transport_error\n"
            "error = transport_error(ConnectionRefusedError(111, 'x'), 'h:1', None)\n"
            "print(type(error).__name__, 'urllib3' in sys.modules)"),
        ],
        capture_output=True, text=True, timeout=30, check=True, env=child_env(),
    ).stdout.split()
    assert loaded == ["ApiConnectionError", "False"]


def test_urllib3s_rows_come_with_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before urllib3 is imported its rows are not there (and no failure of it can come); once it
    is, they are."""
    import openapi_client.net.errors as errors

    timeout: Any = urllib3_errors.ConnectTimeoutError("x")
    monkeypatch.setattr(errors, "_TABLES", {})
    monkeypatch.delitem(sys.modules, "urllib3.exceptions")
    assert type(transport_error(timeout, WHERE, TIMEOUTS)) is ApiProtocolError
    monkeypatch.undo()
    assert type(transport_error(timeout, WHERE, TIMEOUTS)) is ApiTimeoutError
