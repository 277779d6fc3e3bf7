"""Transport failures as the library's exceptions: one table, by type.

A failure arrives as what the socket, ``ssl``, ``http.client`` or urllib3 raised, often wrapped:
urllib3 keeps the exception it wraps among its arguments (``ProtocolError("Connection aborted.",
error)``), Python in ``__cause__`` or ``__context__``. :func:`transport_error` looks at the whole
chain and gives the exception of the first row of the table (:func:`_rows`) whose type is
somewhere in it, at the stage the failure happened if the row is limited to some: certificates
first (the most useful thing to say), then TLS, the proxy, connecting, timeouts, and what a server
did to the exchange. Messages name the server as ``host:port``, never a URL (a query can carry
a credential).

urllib3's rows are used once urllib3 is imported (a failure of urllib3 cannot come before): this
module does not import it, so the WebSocket session and asyncio clients do not pay for it.

One failure has no type of its own: see :func:`_too_many_header_lines`.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
from typing import Any, Callable, NamedTuple, Union

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiSSLError,
    ApiTimeoutError,
    ApiTransportError,
)

__all__ = ["CONNECT", "EXCHANGE", "TLS_HANDSHAKE", "transport_error"]

#: Stages, for the failures whose type alone does not say what went wrong: opening the TCP
#: connection, the TLS handshake, or anything else (the exchange, or not known).
CONNECT = "connect"
TLS_HANDSHAKE = "TLS handshake"
EXCHANGE = "exchange"
_ANY_STAGE = frozenset({CONNECT, TLS_HANDSHAKE, EXCHANGE})

#: OpenSSL's verify codes for a certificate that does not name the host:
#: X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH_CODES = frozenset({62, 64})

#: At most this many exceptions are followed along a chain.
_CHAIN_LIMIT = 8


class _Failure(NamedTuple):
    """What a row describes: where, with which timeouts, at what stage, and the chain of
    exceptions (outermost first)."""

    where: str
    timeout: Any
    stage: str
    chain: tuple[BaseException, ...]


_Types = Union[type[BaseException], tuple[Any, ...]]
#: A row's description: the library's exception, or None when the row does not apply after all.
_Describe = Callable[[BaseException, _Failure], Union[ApiTransportError, None]]


class _Row(NamedTuple):
    types: _Types
    stages: frozenset[str]
    describe: _Describe


def transport_error(
    error: BaseException, where: str, timeout: Any = None, stage: str = EXCHANGE
) -> ApiTransportError:
    """The library's exception for a failed connection or exchange.

    :param error: what the socket, ``ssl``, ``http.client`` or urllib3 raised.
    :param where: the server, ``host:port``.
    :param timeout: its ``connect`` and ``read`` timeouts in seconds, for the messages.
    :param stage: :data:`CONNECT`, :data:`TLS_HANDSHAKE` or :data:`EXCHANGE` (the default: the
        exchange, or not known).
    """
    chain = _chain(error)
    failure = _Failure(where, timeout, stage, chain)
    for row in _table():
        if stage not in row.stages:
            continue
        for candidate in chain:
            if isinstance(candidate, row.types):
                described = row.describe(candidate, failure)
                if described is not None:
                    return described
    return ApiProtocolError(f"the exchange with {where} failed ({type(chain[-1]).__name__})")


def _chain(error: BaseException) -> tuple[BaseException, ...]:
    """``error`` and the exceptions it wraps, outermost first."""
    chain = [error]
    while len(chain) < _CHAIN_LIMIT:
        wrapped = _wrapped(chain[-1])
        if wrapped is None or wrapped in chain:
            break
        chain.append(wrapped)
    return tuple(chain)


def _wrapped(error: BaseException) -> BaseException | None:
    for argument in error.args:  # urllib3: ProtocolError(text, error), SSLError(error), ...
        if isinstance(argument, BaseException):
            return argument
    if error.__cause__ is not None:
        return error.__cause__
    if error.__context__ is not None and not error.__suppress_context__:
        return error.__context__  # urllib3 1.26 raises NewConnectionError in the handler
    reason = getattr(error, "reason", None)  # urllib3's MaxRetryError
    return reason if isinstance(reason, BaseException) else None


# -- the rows' descriptions -----------------------------------------------------------------------


def _certificate_refused(error: BaseException, failure: _Failure) -> ApiTransportError:
    detail = _ssl_detail(error)
    if getattr(error, "verify_code", None) in _NAME_MISMATCH_CODES:
        return _names_another_host(failure.where, detail)
    return ApiSSLError(
        f"TLS certificate verification failed for {failure.where} ({detail}). If the server "
        "uses a private CA, point Configuration.ssl_ca_cert at its bundle."
    )


def _certificate_names_another_host(error: BaseException, failure: _Failure) -> ApiTransportError:
    # urllib3's own check of a name given as assert_hostname.
    return _names_another_host(failure.where, f"certificate verify failed: {error}")


def _names_another_host(where: str, detail: str) -> ApiTransportError:
    return ApiSSLError(
        f"TLS certificate verification failed for {where} ({detail}). Connect by a name the "
        "certificate covers."
    )


def _closed_during_handshake(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(f"{failure.where} closed the connection during the TLS handshake")


def _handshake_failed(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiSSLError(f"TLS handshake with {failure.where} failed ({_ssl_detail(error)})")


def _proxy_failed(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(f"the proxy refused or failed the connection to {failure.where}")


def _could_not_connect(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(
        f"could not connect to {failure.where} ({_connect_reason(failure.chain)}); check "
        "Configuration.host and the network"
    )


def _connect_reason(chain: tuple[BaseException, ...]) -> str:
    if any(isinstance(error, socket.gaierror) for error in chain):
        return "the host name could not be resolved"
    if any(isinstance(error, ConnectionRefusedError) for error in chain):
        return "connection refused"
    root = chain[-1]
    return str(getattr(root, "strerror", None) or type(root).__name__).lower()


def _connect_timed_out(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiTimeoutError(
        f"connecting to {failure.where} timed out after {_seconds(failure.timeout, 'connect')}"
    )


def _handshake_timed_out(error: BaseException, failure: _Failure) -> ApiTransportError:
    # The TLS handshake is part of connecting: the connect timeout bounds it.
    return ApiTimeoutError(
        f"connecting to {failure.where} timed out after {_seconds(failure.timeout, 'connect')} "
        "(TLS handshake)"
    )


def _read_timed_out(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiTimeoutError(
        f"{failure.where} did not answer within {_seconds(failure.timeout, 'read')} "
        "(read timeout)"
    )


def _line_too_long(error: BaseException, failure: _Failure) -> ApiTransportError:
    # http.client's limit on a status line, header, trailer or chunk-size line.
    return ApiProtocolError(
        f"{failure.where} sent a line longer than 65536 bytes ({error}); refused"
    )


def _too_many_header_lines(error: BaseException, failure: _Failure) -> ApiTransportError | None:
    """THE ONE TEXT MATCH. http.client refuses a head of more than 100 header lines with a bare
    ``HTTPException("got more than 100 headers")``: no type of its own, only its text tells it
    from another ``HTTPException`` (``test_http_header_limits`` pins it). None for any other."""
    if type(error) is not http.client.HTTPException or not str(error).startswith("got more than"):
        return None
    # http.client counts the blank line that ends the head among its 100.
    return ApiProtocolError(
        f"{failure.where} sent {_HTTP_CLIENT_MAX_HEADERS - 1} header lines or more in one head "
        f"({error}); refused"
    )


#: http.client's limit on the lines of one head.
_HTTP_CLIENT_MAX_HEADERS = 100


def _cut_short(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiProtocolError(f"the response from {failure.where} was cut short (truncated body)")


def _closed_without_answering(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(f"{failure.where} closed the connection without answering")


def _reset(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(f"the connection to {failure.where} was reset by the server")


def _refused(error: BaseException, failure: _Failure) -> ApiTransportError:
    return ApiConnectionError(f"{failure.where} refused the connection")


# -- the table ------------------------------------------------------------------------------------


class _Urllib3Types(NamedTuple):
    """urllib3's exception types the table names (``()``, which nothing is an instance of, while
    urllib3 is not imported)."""

    CertificateError: _Types = ()
    SSLError: _Types = ()
    ProxyError: _Types = ()
    NewConnectionError: _Types = ()
    ConnectTimeoutError: _Types = ()
    TimeoutError: _Types = ()


def _urllib3_types() -> _Urllib3Types:
    from urllib3 import exceptions
    from urllib3.util.ssl_match_hostname import CertificateError

    return _Urllib3Types(
        CertificateError=CertificateError,
        SSLError=exceptions.SSLError,
        ProxyError=exceptions.ProxyError,
        NewConnectionError=exceptions.NewConnectionError,
        ConnectTimeoutError=exceptions.ConnectTimeoutError,
        TimeoutError=exceptions.TimeoutError,  # ReadTimeoutError and ConnectTimeoutError
    )


def _rows(u: _Urllib3Types) -> tuple[_Row, ...]:
    """The table: the first row whose type is in the chain, at a stage it lists, describes it."""
    any_stage, connect, handshake = _ANY_STAGE, frozenset({CONNECT}), frozenset({TLS_HANDSHAKE})
    return (
        _Row(ssl.SSLCertVerificationError, any_stage, _certificate_refused),
        _Row(u.CertificateError, any_stage, _certificate_names_another_host),
        _Row((ssl.SSLZeroReturnError, ssl.SSLEOFError), any_stage, _closed_during_handshake),
        _Row((ssl.SSLError, u.SSLError), any_stage, _handshake_failed),
        _Row(u.ProxyError, any_stage, _proxy_failed),
        # NewConnectionError is a ConnectTimeoutError too: before it.
        _Row((socket.gaierror, u.NewConnectionError), any_stage, _could_not_connect),
        _Row(u.ConnectTimeoutError, any_stage, _connect_timed_out),
        _Row(socket.timeout, connect, _connect_timed_out),
        _Row((OSError, ValueError), connect, _could_not_connect),
        _Row((socket.timeout, u.TimeoutError), handshake, _handshake_timed_out),
        _Row(OSError, handshake, _closed_during_handshake),
        _Row((socket.timeout, u.TimeoutError), any_stage, _read_timed_out),
        _Row(http.client.LineTooLong, any_stage, _line_too_long),
        _Row(http.client.HTTPException, any_stage, _too_many_header_lines),
        _Row(http.client.IncompleteRead, any_stage, _cut_short),
        # RemoteDisconnected is a ConnectionResetError too: before it.
        _Row(http.client.RemoteDisconnected, any_stage, _closed_without_answering),
        _Row((ConnectionResetError, BrokenPipeError, ConnectionAbortedError), any_stage, _reset),
        _Row(ConnectionRefusedError, any_stage, _refused),
    )


_TABLES: dict[bool, tuple[_Row, ...]] = {}


def _table() -> tuple[_Row, ...]:
    """The rows, urllib3's included once urllib3 is imported."""
    with_urllib3 = "urllib3.exceptions" in sys.modules
    rows = _TABLES.get(with_urllib3)
    if rows is None:
        rows = _TABLES[with_urllib3] = _rows(_urllib3_types() if with_urllib3 else _Urllib3Types())
    return rows


# -- details for the messages ---------------------------------------------------------------------


def _ssl_detail(error: BaseException) -> str:
    """What an ``ssl`` error says, without its file and line: OpenSSL's reason, or the
    certificate check's message."""
    verify_message = getattr(error, "verify_message", None)
    if verify_message:
        return f"certificate verify failed: {verify_message}"
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    text = str(error)
    start = text.find("] ")
    if text.startswith("[SSL: ") and start > 0:
        return text[start + 2 :].split(" (_ssl", 1)[0].strip()
    return text or "TLS error"


def _seconds(timeout: Any, which: str) -> str:
    value = getattr(timeout, which, None)
    if isinstance(value, (int, float)):
        return f"{value:g} s"
    return "the timeout"
