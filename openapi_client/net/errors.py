"""Transport failures as the library's exceptions."""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any

from urllib3 import exceptions as urllib3_errors

from openapi_client.exceptions import (
    ApiConnectionError,
    ApiProtocolError,
    ApiSSLError,
    ApiTimeoutError,
    ApiTransportError,
)

__all__ = ["connect_reason", "transport_error"]

#: http.client's limit on the header lines of one head.
_MAX_HEADER_LINES = 100


def connect_reason(error: BaseException) -> str:
    if isinstance(error, socket.gaierror) or any(
        sign in str(error) for sign in _NAME_RESOLUTION_SIGNS
    ):
        return "the host name could not be resolved"
    if isinstance(error, ConnectionRefusedError) or "Connection refused" in str(error):
        return "connection refused"
    text = getattr(error, "strerror", None) or type(error).__name__
    return str(text).lower()


def transport_error(
    error: BaseException, where: str, timeout: Any = None, handshake: bool = False
) -> ApiTransportError:
    """Describe a urllib3/socket failure as the library's exception (messages carry no URL)."""
    cause = _root_cause_exception(error)
    if type(cause).__name__ == "CertificateError" or _is_hostname_mismatch(cause):
        return ApiSSLError(
            f"TLS certificate verification failed for {where} (certificate verify failed: "
            f"{_ssl_detail(cause) if isinstance(cause, ssl.SSLError) else cause}). "
            "Connect by a name the certificate covers."
        )
    if isinstance(error, urllib3_errors.SSLError) or isinstance(cause, ssl.SSLError) or (
        handshake and isinstance(cause, (ConnectionError, OSError))
    ):
        if isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)) or (
            handshake and not isinstance(cause, ssl.SSLError)
        ):
            return ApiConnectionError(f"{where} closed the connection during the TLS handshake")
        detail = _ssl_detail(error)
        if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail:
            return ApiSSLError(
                f"TLS certificate verification failed for {where} ({detail}). If the server uses "
                "a private CA, point Configuration.ssl_ca_cert at its bundle."
            )
        return ApiSSLError(f"TLS handshake with {where} failed ({detail})")
    if isinstance(error, urllib3_errors.ProxyError):
        return ApiConnectionError(f"the proxy refused or failed the connection to {where}")
    if isinstance(error, urllib3_errors.NewConnectionError) or (
        isinstance(error, urllib3_errors.HTTPError) and "NameResolution" in type(error).__name__
    ):
        return ApiConnectionError(
            f"could not connect to {where} ({connect_reason(cause)}); check "
            "Configuration.host and the network"
        )
    if isinstance(error, urllib3_errors.ConnectTimeoutError):
        return ApiTimeoutError(
            f"connecting to {where} timed out after {_seconds(timeout, 'connect')}"
        )
    if isinstance(error, (urllib3_errors.ReadTimeoutError, socket.timeout)):
        if "handshake" in repr(error.__context__) or "handshake" in str(cause):
            # urllib3 bounds the TLS handshake by the connect timeout, and reports it as a read.
            return ApiTimeoutError(
                f"connecting to {where} timed out after {_seconds(timeout, 'connect')} "
                "(TLS handshake)"
            )
        return ApiTimeoutError(
            f"{where} did not answer within {_seconds(timeout, 'read')} (read timeout)"
        )
    refused = _http_client_refusal(cause)
    if refused is not None:
        return ApiProtocolError(f"{where} sent {refused}; refused")
    if isinstance(cause, http.client.IncompleteRead) or "IncompleteRead" in repr(error):
        return ApiProtocolError(f"the response from {where} was cut short (truncated body)")
    if isinstance(cause, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ApiConnectionError(f"the connection to {where} was reset by the server")
    if isinstance(cause, http.client.RemoteDisconnected):
        return ApiConnectionError(f"{where} closed the connection without answering")
    if isinstance(cause, ConnectionRefusedError):
        return ApiConnectionError(f"{where} refused the connection")
    if isinstance(cause, socket.timeout):
        return ApiTimeoutError(f"{where} did not answer within {_seconds(timeout, 'read')}")
    return ApiProtocolError(f"the exchange with {where} failed ({type(cause).__name__})")


def _http_client_refusal(cause: BaseException) -> str | None:
    """What http.client (under urllib3's path) refused in an answer, if ``cause`` is such a
    refusal: ``LineTooLong`` for a line over 65536 bytes (status line, header, trailer or chunk
    size), and a bare ``HTTPException`` for more than 100 header lines in one head, which only its
    text tells apart (the one such match; test_http_header_limits pins it)."""
    if isinstance(cause, http.client.LineTooLong):
        return f"a line longer than 65536 bytes ({cause})"
    if type(cause) is http.client.HTTPException and str(cause).startswith("got more than"):
        # http.client counts the blank line that ends the head among its 100 lines.
        return f"{_MAX_HEADER_LINES - 1} header lines or more in one head ({cause})"
    return None


def _is_hostname_mismatch(error: BaseException) -> bool:
    return isinstance(error, ssl.SSLCertVerificationError) and (
        getattr(error, "verify_code", None) == 62
        or "Hostname mismatch" in str(getattr(error, "verify_message", ""))
        or "IP address mismatch" in str(getattr(error, "verify_message", ""))
    )


def _root_cause_exception(error: BaseException) -> BaseException:
    seen = 0
    current = error
    while seen < 8:
        nested = None
        if isinstance(current, urllib3_errors.ProtocolError) and len(current.args) > 1:
            nested = current.args[1]
        if isinstance(current, urllib3_errors.SSLError) and current.args:
            nested = current.args[0]
        nested = nested if isinstance(nested, BaseException) else current.__cause__
        if nested is None:
            nested = getattr(current, "reason", None)
        if not isinstance(nested, BaseException) or nested is current:
            return current
        current = nested
        seen += 1
    return current


# How a failed DNS lookup reads in urllib3 1.26, which keeps only the text of socket.gaierror.
_NAME_RESOLUTION_SIGNS = (
    "Name or service not known",
    "Temporary failure in name resolution",
    "nodename nor servname",
    "No address associated with hostname",
    "getaddrinfo failed",
)


def _ssl_detail(error: BaseException) -> str:
    cause = _root_cause_exception(error)
    for candidate in (cause, error):
        reason = getattr(candidate, "reason", None)
        verify_message = getattr(candidate, "verify_message", None)
        if verify_message:
            return f"certificate verify failed: {verify_message}"
        if isinstance(reason, str) and reason:
            return reason
    text = str(error)
    start = text.find("] ")
    if text.startswith("[SSL: ") and start > 0:
        return text[start + 2 :].split(" (_ssl", 1)[0].strip()
    return "TLS error"


def _seconds(timeout: Any, which: str) -> str:
    value = getattr(timeout, which, None)
    if isinstance(value, (int, float)):
        return f"{value:g} s"
    return "the timeout"
