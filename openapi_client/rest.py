"""Everything about the wire: urllib3 pools, TLS, proxies, timeouts, and transport failures.

Nothing above this module touches a socket, and nothing from urllib3 or ``socket`` escapes it:
every failure to get a response becomes an :class:`~openapi_client.exceptions.ApiTransportError`
with ``status == 0`` and the original exception chained.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
import threading
import warnings
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Union
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3 import exceptions as urllib3_errors
from urllib3._collections import HTTPHeaderDict  # public as urllib3.HTTPHeaderDict in 2.x only
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch
from urllib3.util.wait import wait_for_read

from openapi_client.configuration import Configuration, Timeout, check_timeout
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiSSLError,
    ApiTimeoutError,
    ApiTransportError,
    ApiValueError,
    exception_for_response,
)
from openapi_client.redaction import RedactingFilter

# Re-exported: generated clients import ApiException from here.
__all__ = ["ApiException", "InsecureTLSWarning", "RESTClientObject", "RESTResponse"]

logger = logging.getLogger(__name__)
# urllib3 logs each request target at DEBUG; public/auth carries credentials in its query.
logging.getLogger("urllib3.connectionpool").addFilter(RedactingFilter())

_NO_RETRIES = Retry(total=False, redirect=False, raise_on_redirect=False)


class InsecureTLSWarning(UserWarning):
    """Issued once per client when ``verify_ssl`` is off."""


class RESTResponse:
    """A fully read HTTP response: ``status``, ``reason``, ``data`` (bytes) and ``headers``."""

    __slots__ = ("_headers", "_message", "data", "reason", "status")

    def __init__(self, status: int, reason: str, data: bytes, message: Any) -> None:
        self.status = status
        self.reason = reason or http.client.responses.get(status, "")
        self.data = data
        self._message = message
        self._headers: Optional[HTTPHeaderDict] = None

    @property
    def headers(self) -> HTTPHeaderDict:
        """The response headers (case-insensitive), built on first use."""
        if self._headers is None:
            self._headers = HTTPHeaderDict(self._message.items())
        return self._headers

    def getheaders(self) -> HTTPHeaderDict:
        """The response headers (case-insensitive)."""
        return self.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """One response header, or ``default``."""
        value: Optional[str] = self._message.get(name, default)
        return value

    def __repr__(self) -> str:
        return f"RESTResponse(status={self.status}, reason={self.reason!r})"


class RequestTimeout(NamedTuple):
    """Connect and read timeouts in seconds, with the equivalent urllib3 ``Timeout``."""

    connect: float
    read: float
    urllib3_timeout: urllib3.Timeout


class Origin:
    """A parsed API root (``scheme://host:port/base``), computed once per host string."""

    __slots__ = (
        "base_path",
        "hostname",
        "insecure",
        "is_loopback",
        "origin",
        "port",
        "scheme",
    )

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiValueError(
                f"Configuration.host must be an http:// or https:// URL such as "
                f"https://www.deribit.com/api/v2, got {url!r}"
            )
        if parts.username or parts.password:
            raise ApiValueError("Configuration.host must not carry a user name or password")
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ApiValueError(f"Configuration.host has an invalid port: {url!r}") from None
        self.base_path = parts.path
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.is_loopback = _is_loopback(self.hostname)
        #: Plain http to a host off this machine: credentials would cross the network readable.
        self.insecure = self.scheme == "http" and not self.is_loopback

    @property
    def display(self) -> str:
        """``host:port`` for messages (``[::1]:port`` for an IPv6 address)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


def _is_loopback(hostname: str) -> bool:
    name = hostname.lower().strip("[]")
    if name in ("localhost", "::1") or name.endswith(".localhost"):
        return True
    return re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}", name) is not None


class RESTClientObject:
    """The transport: one urllib3 pool manager shared by every thread of an ``ApiClient``."""

    def __init__(self, configuration: Configuration, pools_size: int = 4) -> None:
        self.configuration = configuration
        maxsize = configuration.connection_pool_maxsize
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ApiValueError(
                f"connection_pool_maxsize must be a whole number >= 1, got {maxsize!r}"
            )
        pool_args: Dict[str, Any] = {
            "num_pools": pools_size,
            "maxsize": maxsize,
            "block": False,
            "retries": _NO_RETRIES,
        }
        if configuration.verify_ssl:
            import certifi

            pool_args["cert_reqs"] = ssl.CERT_REQUIRED
            pool_args["ca_certs"] = configuration.ssl_ca_cert or certifi.where()
        else:
            pool_args["cert_reqs"] = ssl.CERT_NONE
            # Said once here; the keep-alive lanes connect without urllib3's per-connection
            # warning (only the proxy and unread-response paths still go through urllib3's).
            warnings.warn(
                "TLS certificate verification is off (Configuration.verify_ssl = False): "
                "anyone on the network path can read and change your requests and token.",
                InsecureTLSWarning,
                stacklevel=3,
            )
        if configuration.cert_file:
            pool_args["cert_file"] = configuration.cert_file
        if configuration.key_file:
            pool_args["key_file"] = configuration.key_file
        if configuration.assert_hostname is not None:
            pool_args["assert_hostname"] = configuration.assert_hostname
        self.uses_proxy = bool(configuration.proxy)
        self.pool_manager: urllib3.PoolManager
        if configuration.proxy:
            self.pool_manager = urllib3.ProxyManager(
                proxy_url=configuration.proxy,
                proxy_headers=configuration.proxy_headers,
                **pool_args,
            )
        else:
            self.pool_manager = urllib3.PoolManager(**pool_args)
        self._maxsize = maxsize
        self._timeouts: Dict[Any, RequestTimeout] = {}
        self._lanes: Dict[str, _KeepAliveLane] = {}
        self._lanes_lock = threading.Lock()

    # -- timeouts -------------------------------------------------------------------------------

    def timeout(self, value: Optional[Timeout]) -> RequestTimeout:
        """The timeouts for a ``_request_timeout`` value (``None``: the configured default)."""
        if value is None:
            value = self.configuration.request_timeout
        try:
            cached = self._timeouts.get(value)
        except TypeError:  # unhashable: not a timeout, and check_timeout says why
            cached = None
        if cached is not None:
            return cached
        check_timeout(value)
        connect, read = value if isinstance(value, tuple) else (value, value)
        result = RequestTimeout(
            float(connect), float(read), urllib3.Timeout(connect=connect, read=read)
        )
        if len(self._timeouts) < 64:
            self._timeouts[value] = result
        return result

    # -- requests -------------------------------------------------------------------------------

    def send(
        self,
        origin: Origin,
        target: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        preload_content: bool = True,
    ) -> Any:
        """Send ``GET target`` to ``origin`` and return the response.

        With ``preload_content`` the result is a :class:`RESTResponse` whose body has been read
        and whose connection is back in the pool; without, an unread urllib3 response.
        Raises :class:`ApiTransportError` when no complete response arrived.
        """
        if not preload_content or self.uses_proxy:
            return self._send_through_pool_manager(
                origin, target, headers, timeout, preload_content
            )
        lane = self._lanes.get(origin.origin)
        if lane is None:
            lane = self._lane(origin)
        connection = lane.checkout()
        try:
            if connection.sock is None:
                connection.timeout = timeout.connect
                connection.connect()
                sock: Any = connection.sock
                sock.settimeout(timeout.read)
            elif connection.sock.gettimeout() != timeout.read:
                connection.sock.settimeout(timeout.read)
            _send_request(connection, "GET", target, headers=headers)
            response = _get_response(connection)
            data = response.read()
        except BaseException as error:
            connection.close()
            if isinstance(error, _TRANSPORT_ERRORS):
                raise transport_error(error, origin.display, timeout) from error
            if isinstance(error, ValueError):  # http.client refusing a header name or value
                raise ApiValueError(
                    "a request header is not valid HTTP (a line break or control character in "
                    "a header set with set_default_header, user_agent or a credential?)"
                ) from None
            raise
        if response.will_close:
            connection.close()
        else:
            lane.checkin(connection)
        return RESTResponse(response.status, response.reason, data, response.msg)

    def _lane(self, origin: Origin) -> "_KeepAliveLane":
        with self._lanes_lock:
            lane = self._lanes.get(origin.origin)
            if lane is None:
                pool = self.pool_manager.connection_from_url(origin.origin)
                lane = _KeepAliveLane(pool, self._maxsize)
                self._lanes[origin.origin] = lane
            return lane

    def _send_through_pool_manager(
        self,
        origin: Origin,
        target: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        preload_content: bool,
    ) -> Any:
        try:
            response = self.pool_manager.urlopen(
                "GET",
                origin.origin + target,
                headers=headers,
                retries=_NO_RETRIES,
                redirect=False,
                timeout=timeout.urllib3_timeout,
                preload_content=preload_content,
                enforce_content_length=True,
            )
        except _TRANSPORT_ERRORS as error:
            raise transport_error(error, origin.display, timeout) from error
        if not preload_content:
            return response
        return RESTResponse(
            response.status, response.reason or "", response.data, response.headers
        )

    def request(
        self,
        method: str,
        url: str,
        query_params: Optional[Any] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: Optional[Any] = None,
        post_params: Optional[Any] = None,
        _preload_content: bool = True,
        _request_timeout: Optional[Timeout] = None,
    ) -> Union[RESTResponse, Any]:
        """Generated-client style entry point: one GET, raising ``ApiException`` on failure."""
        if method.upper() != "GET":
            raise ApiValueError(f"only GET requests are supported, got {method}")
        if body is not None or post_params:
            raise ApiValueError("GET requests carry their parameters in the query, not a body")
        origin = Origin(url)
        parts = urlsplit(url)
        query = "&".join(filter(None, (parts.query, urlencode(query_params or {}))))
        target = (parts.path or "/") + (f"?{query}" if query else "")
        response = self.send(
            origin, target, headers or {}, self.timeout(_request_timeout), _preload_content
        )
        if not _preload_content:
            return response
        if not 200 <= response.status <= 299:
            raise exception_for_response(
                response.status,
                response.reason,
                response.data.decode("utf-8", "replace"),
                response.headers,
            )
        return response

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lanes_lock:
            lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            lane.close()
        self.pool_manager.clear()


class _KeepAliveLane:
    """Idle keep-alive connections to one origin, most recently used first.

    Connections are made by urllib3's pool for that origin, so TLS settings (certifi or
    ``ssl_ca_cert``, client certificates, hostname checks) are urllib3's. Requests then go
    straight over ``http.client`` on those connections, which skips the per-request
    bookkeeping of ``HTTPConnectionPool.urlopen`` that this client does not use: its retries,
    redirects and timeout objects are handled once, above this module. ``list.pop`` and
    ``list.append`` are atomic, so threads share a lane without a lock.
    """

    __slots__ = ("_idle", "_maxsize", "_pool")

    def __init__(self, pool: Any, maxsize: int) -> None:
        self._pool = pool
        self._maxsize = maxsize
        self._idle: List[Any] = []

    def checkout(self) -> Any:
        """An idle connection that the server has not closed, or a new unconnected one."""
        idle = self._idle
        while idle:
            try:
                connection = idle.pop()
            except IndexError:
                break
            sock = connection.sock
            # Readable while idle means the server closed it (or broke protocol): drop it.
            if sock is not None and not wait_for_read(sock, timeout=0.0):
                return connection
            connection.close()
        return self._pool._new_conn()

    def checkin(self, connection: Any) -> None:
        """Keep ``connection`` for reuse, or close it when enough are idle already."""
        if len(self._idle) < self._maxsize:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break


# The connection classes are urllib3's subclasses of http.client.HTTPConnection; calling the
# base class's request/getresponse gives plain http.client responses, identically on urllib3 1.26
# and 2.x, with TLS and connection set-up still done by urllib3.
_send_request = http.client.HTTPConnection.request
_get_response = http.client.HTTPConnection.getresponse

# urllib3 1.26 reports a certificate for another host name as its own CertificateError, which
# is a ValueError, not an SSLError.
_TRANSPORT_ERRORS = (
    urllib3_errors.HTTPError,
    OSError,
    http.client.HTTPException,
    HostnameMismatch,
)


def transport_error(error: BaseException, where: str, timeout: Any = None) -> ApiTransportError:
    """Describe a urllib3/socket failure as the library's exception (messages carry no URL)."""
    if isinstance(error, HostnameMismatch):
        return ApiSSLError(
            f"TLS certificate verification failed for {where} (certificate verify failed: "
            f"{error}). Connect by a name the certificate covers."
        )
    if isinstance(error, urllib3_errors.SSLError) or isinstance(error, ssl.SSLError):
        if isinstance(_root_cause_exception(error), (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
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
    if isinstance(error, urllib3_errors.NewConnectionError):
        return ApiConnectionError(
            f"could not connect to {where} ({_root_cause(error)}); check Configuration.host "
            "and the network"
        )
    if isinstance(error, urllib3_errors.ConnectTimeoutError):
        return ApiTimeoutError(
            f"connecting to {where} timed out after {_seconds(timeout, 'connect')}"
        )
    if isinstance(error, (urllib3_errors.ReadTimeoutError, socket.timeout)):
        return ApiTimeoutError(
            f"{where} did not answer within {_seconds(timeout, 'read')} (read timeout)"
        )
    cause = _root_cause_exception(error)
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


def _root_cause_exception(error: BaseException) -> BaseException:
    seen = 0
    current = error
    while seen < 8:
        nested = None
        if isinstance(current, urllib3_errors.ProtocolError) and len(current.args) > 1:
            nested = current.args[1]
        nested = nested if isinstance(nested, BaseException) else current.__cause__
        if nested is None or nested is current:
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


def _root_cause(error: BaseException) -> str:
    cause = _root_cause_exception(error)
    if (
        isinstance(cause, socket.gaierror)
        or "NameResolution" in type(error).__name__
        or any(sign in str(error) for sign in _NAME_RESOLUTION_SIGNS)
    ):
        return "the host name could not be resolved"
    if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(error):
        return "connection refused"
    text = str(getattr(cause, "strerror", None) or type(cause).__name__)
    return text.lower()


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
    match = re.search(r"\[SSL: [A-Z_]+\] ([^(]+)", text)
    return match.group(1).strip() if match else "TLS error"


def _seconds(timeout: Any, which: str) -> str:
    value = getattr(timeout, which, None)
    if isinstance(value, (int, float)):
        return f"{value:g} s"
    return "the timeout"

