"""Everything about the wire: connections, TLS, proxies, timeouts, limits and transport failures.

Nothing above this module touches a socket, and nothing from urllib3, ``ssl`` or ``socket``
escapes it: every failure becomes an :class:`~openapi_client.exceptions.OpenApiException`
subclass with the original exception chained.

Two paths carry a request, with the same promises:

* **the direct path** (the default for a host reached without a proxy): the client's own
  keep-alive HTTP/1.1 connections, made with the standard library's ``socket`` and ``ssl``. It
  reads every answer itself, so it can hold each attempt to one total deadline, refuse a body
  larger than ``max_response_size`` while reading it, skip informational (1xx) answers and close
  any connection whose framing is in doubt;
* **urllib3's own path** (``PoolManager.urlopen``), used wherever the direct path cannot vouch
  for the connection: through a proxy, when urllib3's connection classes have been replaced (its
  HTTP/2 support, for instance), or when ``Configuration.fast_path`` is off. Deadlines there are
  kept by a watchdog that shuts the socket of an exchange that outlives its attempt.

Both use only the public APIs of urllib3 (1.26 and 2.x) and of the standard library.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import os
import queue
import select
import socket
import ssl
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool as urllib3_connectionpool
from urllib3 import exceptions as urllib3_errors

from openapi_client.configuration import Configuration, Timeout, check_host, check_timeout
from openapi_client.deadline import RECHECK_SECONDS, Deadline
from openapi_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiProtocolError,
    ApiResponseTooLargeError,
    ApiSSLError,
    ApiTimeoutError,
    ApiTransportError,
    ApiValueError,
    OpenApiException,
    exception_for_response,
)
from openapi_client.headers import HTTPHeaders, check_header
from openapi_client.redaction import RedactingFilter, install_filter

# Re-exported: generated clients import ApiException from here.
__all__ = [
    "ApiException",
    "InsecureTLSWarning",
    "RESTClientObject",
    "RESTResponse",
    "StreamedResponse",
]

logger = install_filter(logging.getLogger(__name__))
# urllib3 logs each request target at DEBUG; public/auth carries credentials in its query.
logging.getLogger("urllib3.connectionpool").addFilter(RedactingFilter())

_NO_RETRIES = urllib3.Retry(total=False, redirect=False, raise_on_redirect=False)

#: Bytes read from a socket at a time.
_RECV_SIZE = 65536
#: The heads of one answer (its informational ones included: status lines, header lines and the
#: blank lines that end them) may not exceed this many bytes in all, nor a trailer section.
_MAX_HEAD = 65536
#: Nor this many header lines in all (http.client, on urllib3's path, allows 100 per head).
_MAX_HEADER_LINES = 100
#: Informational answers skipped before the final one; more is a server in a loop.
_MAX_INFORMATIONAL = 16
#: A chunk-size line: hex digits (at most 16: 2**64 bytes), extensions, CRLF.
_MAX_CHUNK_LINE = 4096


class InsecureTLSWarning(UserWarning):
    """Issued once per client when ``verify_ssl`` is off."""


class RESTResponse:
    """A fully read HTTP response: ``status``, ``reason``, ``data`` (bytes) and ``headers``."""

    __slots__ = ("data", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, data: bytes, headers: HTTPHeaders) -> None:
        self.status = status
        self.reason = reason or http.client.responses.get(status, "")
        self.data = data
        #: The response headers (case-insensitive).
        self.headers = headers

    def getheaders(self) -> HTTPHeaders:
        """The response headers (case-insensitive)."""
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """One response header, or ``default``."""
        value: str | None = self.headers.get(name, default)
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
        "host_header",
        "hostname",
        "insecure",
        "is_loopback",
        "origin",
        "port",
        "scheme",
    )

    def __init__(self, url: str) -> None:
        parts = check_host(url.rstrip("/") if isinstance(url, str) else url)
        self.scheme = parts.scheme
        self.hostname: str = parts.hostname or ""
        default_port = 443 if parts.scheme == "https" else 80
        self.port: int = parts.port or default_port
        # Percent-encode what is not ASCII, keeping what is already encoded.
        self.base_path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        bracketed = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        self.host_header = bracketed if self.port == default_port else f"{bracketed}:{self.port}"
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
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and len(p) <= 3 for p in parts)


# -- TLS ------------------------------------------------------------------------------------------


def _tls_context(configuration: Configuration) -> ssl.SSLContext:
    """The TLS settings of the direct path, checked now: a bad file is a setting error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if configuration.verify_ssl:
        import certifi

        ca = configuration.ssl_ca_cert or certifi.where()
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ApiValueError(
                f"Configuration.ssl_ca_cert: {ca!r} is not a usable CA bundle (PEM "
                f"certificates expected): {_error_text(error)}"
            ) from error
        if configuration.assert_hostname is False:
            context.check_hostname = False
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file or configuration.key_file:
        if not configuration.cert_file:
            raise ApiValueError("Configuration.key_file is set without cert_file")
        try:
            context.load_cert_chain(
                configuration.cert_file, configuration.key_file, password=_no_password
            )
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ApiValueError(
                "Configuration.cert_file/key_file: not a usable client certificate and key "
                f"(PEM, key unencrypted and matching the certificate): {_error_text(error)}"
            ) from error
    return context


def _no_password() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    return b""


def _error_text(error: BaseException) -> str:
    return str(getattr(error, "reason", None) or getattr(error, "strerror", None) or error)


def _urllib3_is_stock() -> bool:
    """Whether urllib3's connection classes are its own HTTP/1.1 ones (not, for instance,
    replaced by ``urllib3.http2.inject_into_urllib3()``)."""
    return (
        urllib3_connectionpool.HTTPConnectionPool.ConnectionCls
        is urllib3_connection.HTTPConnection
        and urllib3_connectionpool.HTTPSConnectionPool.ConnectionCls
        is urllib3_connection.HTTPSConnection
    )


# -- the client -----------------------------------------------------------------------------------


class RESTClientObject:
    """The transport: connections shared by every thread of an ``ApiClient``.

    Settings are read once, here: TLS files are loaded (``ApiValueError`` if they cannot be),
    the pool sizes and the proxy fixed.
    """

    def __init__(self, configuration: Configuration, pools_size: int = 4) -> None:
        self.configuration = configuration
        maxsize = configuration.connection_pool_maxsize
        max_connections = configuration.max_connections
        # Loading a CA bundle costs about 30 ms: done now when TLS is configured or the host is
        # https (so that a bad file is a setting error here), else when an https lane first
        # needs it.
        self._tls: ssl.SSLContext | None = None
        if (
            configuration.ssl_ca_cert
            or configuration.cert_file
            or configuration.key_file
            or configuration.host.startswith("https:")
        ):
            self._tls = _tls_context(configuration)
        pool_args: dict[str, Any] = {
            "num_pools": pools_size,
            "maxsize": max_connections,
            "block": True,
            "retries": _NO_RETRIES,
        }
        if configuration.verify_ssl:
            import certifi

            pool_args["cert_reqs"] = ssl.CERT_REQUIRED
            pool_args["ca_certs"] = configuration.ssl_ca_cert or certifi.where()
        else:
            pool_args["cert_reqs"] = ssl.CERT_NONE
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
        self._pool_args = pool_args
        self.uses_proxy = bool(configuration.proxy)
        stock = _urllib3_is_stock()
        #: Whether direct requests take the direct path (see the module docstring).
        self.direct = (
            bool(configuration.fast_path)
            and not self.uses_proxy
            and stock
            and not isinstance(configuration.assert_hostname, str)
        )
        self._watch_connections = stock
        self.pool_manager = self._new_pool_manager()
        self._maxsize = maxsize
        self._max_connections = max_connections
        self._timeouts: dict[Any, RequestTimeout] = {}
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._closed = False

    def _new_pool_manager(self) -> urllib3.PoolManager:
        configuration = self.configuration
        manager: urllib3.PoolManager
        if configuration.proxy:
            manager = urllib3.ProxyManager(
                proxy_url=configuration.proxy,
                proxy_headers=configuration.proxy_headers,
                **self._pool_args,
            )
        else:
            manager = urllib3.PoolManager(**self._pool_args)
        if self._watch_connections:
            # Pools whose connections report to the watchdog; otherwise urllib3's own.
            manager.pool_classes_by_scheme = {
                "http": _WatchedHTTPConnectionPool,
                "https": _WatchedHTTPSConnectionPool,
            }
        return manager

    # -- timeouts -------------------------------------------------------------------------------

    def timeout(self, value: Timeout | None) -> RequestTimeout:
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
        deadline: Deadline | None = None,
        ready: Callable[[], Deadline] | None = None,
    ) -> Any:
        """Send ``GET target`` to ``origin`` and return the response.

        :param deadline: when the whole exchange must be over (default: ``attempt_timeout``
            from now).
        :param ready: called once the connection is ready, just before the request leaves (the
            rate limiter's turn); returns the deadline to hold to from then on.

        With ``preload_content`` the result is a :class:`RESTResponse` whose body has been read;
        without, a :class:`StreamedResponse` to read. Raises :class:`ApiTransportError` when no
        complete response arrived.
        """
        if self._closed:
            raise ApiValueError("this client is closed: build a new one to make more calls")
        if deadline is None:
            deadline = Deadline.after(self.configuration.attempt_timeout, "attempt_timeout")
        limit = self.configuration.max_response_size
        if self.direct:
            lane = self._lanes.get(origin.origin)
            if lane is None:
                lane = self._lane(origin)
            return lane.exchange(
                target, headers, timeout, deadline, ready, limit, preload_content
            )
        return self._send_through_urllib3(
            origin, target, headers, timeout, deadline, ready, limit, preload_content
        )

    def _lane(self, origin: Origin) -> _Lane:
        with self._lanes_lock:
            lane = self._lanes.get(origin.origin)
            if lane is None:
                tls = self._tls
                if tls is None and origin.scheme == "https":
                    tls = self._tls = _tls_context(self.configuration)
                lane = _Lane(origin, tls, self._maxsize, self._max_connections)
                self._lanes[origin.origin] = lane
            return lane

    def _send_through_urllib3(
        self,
        origin: Origin,
        target: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        deadline: Deadline,
        ready: Callable[[], Deadline] | None,
        limit: int,
        preload_content: bool,
    ) -> Any:
        if ready is not None and not self._watch_connections:
            deadline = ready()
            ready = None
        where = origin.display
        watch = _Watch(deadline.at)
        # The connection calls `ready` once it is connected, just before the request leaves.
        watch.ready = ready
        response: Any = None
        body: _Urllib3Body | None = None
        # Whatever happens from here (an interrupt included), the handler gives back what the
        # exchange holds: the answer and its connection, the watchdog's registration, and a slot
        # urllib3 did not give back itself (see _Watch.abandon).
        try:
            response = self._urlopen(
                origin.origin + target, headers, timeout, deadline, watch, where
            )
            body = _Urllib3Body(response, watch, where, timeout, watch.deadline or deadline, limit)
            status = int(response.status)
            reason = _printable(response.reason or "")
            response_headers = HTTPHeaders(response.headers.items())
            if "Transfer-Encoding" in response_headers and "Content-Length" in response_headers:
                # Both framings: http.client reads by the chunks; trust nothing after them.
                body.framing_in_doubt()
            if 100 <= status <= 199:
                # urllib3 (through http.client) takes an informational answer other than 100 as
                # the answer, and leaves the real one unread; the connection cannot be trusted.
                raise _broken(
                    f"{where} sent an informational answer ({status}) that urllib3's path "
                    "cannot skip"
                )
            _check_answer(status, reason, response_headers, limit)
            return _finish(status, reason, response_headers, body, preload_content)
        except BaseException:
            if body is not None:
                body.discard()
            elif response is not None:
                _discard_urllib3(response)
            watch.abandon()
            raise

    def _urlopen(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        deadline: Deadline,
        watch: _Watch,
        where: str,
    ) -> Any:
        """urllib3's answer to ``GET url``, its head read; raises the library's errors (and
        interrupts as they are). The caller gives back what the exchange holds."""
        remaining = _remaining(deadline, where)
        _WATCHDOG.add(watch)
        _CURRENT_WATCH.watch = watch
        try:
            return self.pool_manager.urlopen(
                "GET",
                url,
                headers=dict(headers),
                retries=_NO_RETRIES,
                redirect=False,
                timeout=urllib3.Timeout(
                    connect=min(timeout.connect, remaining), read=min(timeout.read, remaining)
                ),
                pool_timeout=remaining,
                preload_content=False,
                decode_content=False,
                enforce_content_length=True,
            )
        except Exception as error:
            if isinstance(error, OpenApiException):
                raise  # the rate limiter's refusal, from the connection about to send
            if isinstance(error, urllib3_errors.EmptyPoolError):
                raise _pool_wait_timeout(where, deadline, self._max_connections) from error
            # The socket timeout is capped at what is left of the deadline, so on a busy machine
            # it can fire before the watchdog marks the deadline expired: the deadline ran out.
            current = watch.deadline or deadline
            if watch.expired or current.remaining() <= 0.0:
                raise _deadline_error(where, current) from error
            if isinstance(error, UnicodeEncodeError) or (
                type(error) is ValueError and "header" in str(error)
            ):  # http.client refusing a header name or value
                raise ApiValueError(
                    "a request header is not valid HTTP (a line break or control character in "
                    "a header set with set_default_header, user_agent or a credential?)"
                ) from None
            if isinstance(error, _TRANSPORT_ERRORS):
                raise transport_error(error, where, timeout) from error
            raise
        finally:
            _CURRENT_WATCH.watch = None

    def request(
        self,
        method: str,
        url: str,
        query_params: Any | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any | None = None,
        post_params: Any | None = None,
        _preload_content: bool = True,
        _request_timeout: Timeout | None = None,
    ) -> RESTResponse | StreamedResponse:
        """Generated-client style entry point: one GET, raising ``ApiException`` on failure."""
        if method.upper() != "GET":
            raise ApiValueError(f"only GET requests are supported, got {method}")
        if body is not None or post_params:
            raise ApiValueError("GET requests carry their parameters in the query, not a body")
        for name, value in (headers or {}).items():
            problem = check_header(name, value, "headers")
            if problem:
                raise ApiValueError(problem)
        parts = urlsplit(url)
        origin = Origin(f"{parts.scheme}://{parts.netloc}{parts.path}")
        query = "&".join(filter(None, (parts.query, urlencode(query_params or {}))))
        target = origin.base_path + (f"?{query}" if query else "")
        response = self.send(
            origin, target or "/", headers or {}, self.timeout(_request_timeout), _preload_content
        )
        if not _preload_content:
            return response  # type: ignore[no-any-return]
        if not 200 <= response.status <= 299:
            raise exception_for_response(
                response.status,
                response.reason,
                response.data.decode("utf-8", "replace"),
                response.headers,
            )
        return response  # type: ignore[no-any-return]

    def _slots(self) -> list[_Slots]:
        """The connection slots of every origin, on both paths (what the client holds)."""
        with self._lanes_lock:
            lanes = list(self._lanes.values())
        pools = self.pool_manager.pools
        held: list[Any] = [pools[key].pool for key in pools.keys()]  # urllib3's QueueCls
        return [lane.slots for lane in lanes] + [
            pool_queue.slots for pool_queue in held if isinstance(pool_queue, _PoolQueue)
        ]

    def close(self) -> None:
        """Close every pooled connection; the client refuses requests from then on."""
        self._closed = True
        with self._lanes_lock:
            lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            lane.close()
        self.pool_manager.clear()

    def after_fork(self) -> None:
        """In a child process just forked: drop the parent's connections without touching them
        (the parent keeps using them), and start afresh."""
        self._lanes_lock = threading.Lock()
        for lane in self._lanes.values():
            lane.abandon()
        self._lanes = {}
        self.pool_manager = self._new_pool_manager()


def _finish(
    status: int, reason: str, headers: HTTPHeaders, body: _Body, preload: bool
) -> RESTResponse | StreamedResponse:
    if not preload:
        return StreamedResponse(status, reason, headers, body)
    return RESTResponse(status, reason, body.read_all(), headers)


def _check_answer(status: int, reason: str, headers: HTTPHeaders, limit: int) -> None:
    """Refuse, before reading the body, what the head already shows to be unacceptable."""
    _check_encoding(status, headers)
    _check_declared(status, headers, _content_length(headers), limit)


def _check_encoding(status: int, headers: HTTPHeaders) -> None:
    encoding = headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        shown = encoding if len(encoding) <= 40 else encoding[:40] + "..."
        raise exception_for_response(
            status,
            f"the response body is in Content-Encoding {shown!r}, which the client did not "
            "ask for (it sends Accept-Encoding: identity)",
            None,
            headers,
        )


def _check_declared(status: int, headers: HTTPHeaders, length: int | None, limit: int) -> None:
    if length is not None and length > limit:
        raise _too_large(status, headers, f"declares {length} bytes", limit)


def _too_large(status: int, headers: HTTPHeaders, what: str, limit: int) -> ApiException:
    return ApiResponseTooLargeError(
        status,
        f"the response {what}, more than max_response_size ({limit} bytes); refused",
        headers=headers,
    )


def _content_length(headers: HTTPHeaders) -> int | None:
    """The one Content-Length the headers agree on; ``None`` when absent. Raises
    :class:`ApiProtocolError` when it is not a number or the copies disagree."""
    values = headers.getlist("Content-Length")
    if not values:
        return None
    found = {part.strip() for value in values for part in value.split(",")}
    if len(found) != 1:
        raise _broken("the response has conflicting Content-Length values")
    (text,) = found
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise _broken("the response has an invalid Content-Length")
    return int(text)


# -- connection slots -----------------------------------------------------------------------------
#
# Both paths count their open connections with the same structure, built so that an asynchronous
# exception (a KeyboardInterrupt from Ctrl-C, a notebook's "interrupt kernel", a signal handler
# that raises) can land at any moment of a call without leaking a place under the cap or a lock.

class _Slot:
    """One place under a connection cap (``max_connections``), owned by a :class:`_Slots`.

    A slot is taken while anything references it (the connection that holds it, idle or busy, or
    the exchange still making that connection) until it is given back with :meth:`free`. The
    number of open connections is the number of these objects alive, not a counter every exit
    path must remember to decrement: an exchange abandoned halfway by an interrupt gives its slot
    back when its frames are dropped, without any code having to run.
    """

    __slots__ = ("__weakref__", "owner")

    def __init__(self, owner: _Slots) -> None:
        self.owner = owner

    def free(self) -> None:
        """Give this slot back (its connection is closed, or was never made)."""
        self.owner.free(self)


class _Slots:
    """The connections to one origin: at most ``cap`` open at once (idle, busy or being made), at
    most ``idle_limit`` of them idle, and the threads waiting for one.

    The lock is a plain ``threading.Lock`` taken only in ``with`` blocks, which the interpreter
    enters and leaves without running Python code in between; never ``threading.Condition``,
    whose ``__enter__`` and ``wait()`` are Python code that an interrupt can leave with the lock
    still held (every later call then hangs) or released twice. A waiter parks on a lock of its
    own that whoever frees a slot releases, and looks again every ``RECHECK_SECONDS`` in case the
    wake-up was lost to an interrupt, or the slot came free with the frames that held it.
    """

    __slots__ = ("_idle", "_lock", "_taken", "_waiting", "cap", "idle_limit")

    def __init__(self, cap: int, idle_limit: int) -> None:
        self.cap = cap
        self.idle_limit = idle_limit
        self._idle: list[Any] = []
        self._taken: weakref.WeakSet[_Slot] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._waiting: list[threading.Lock] = []

    @property
    def open(self) -> int:
        """Connections open (idle, busy or being made): the slots taken."""
        return len(self._taken)

    @property
    def idle(self) -> int:
        return len(self._idle)

    # Each idle connection has ``pooled`` set while it is in the list (set and cleared under the
    # lock, next to the list operation with no call in between): an interrupt can land just after
    # keep() put a connection back, and the caller, taking keep() to have failed, then closes it or
    # puts it back again; urllib3's path ignores both for a pooled connection.

    def take(self, until: float) -> Any:
        """The idle connection put back last, or else a new :class:`_Slot` for a connection to be
        made, waiting until ``until`` (``time.monotonic()``) for either; ``None`` if none came."""
        while True:
            with self._lock:
                if self._idle:
                    connection = self._idle.pop()
                    connection.pooled = False
                    return connection
                if len(self._taken) < self.cap:
                    slot = _Slot(self)
                    self._taken.add(slot)
                    return slot
                remaining = until - time.monotonic()
                if remaining <= 0.0:
                    return None
                parked = threading.Lock()
                parked.acquire()
                self._waiting.append(parked)
            parked.acquire(True, min(remaining, RECHECK_SECONDS))
            with self._lock:
                if parked in self._waiting:
                    self._waiting.remove(parked)

    def take_idle(self) -> Any:
        """An idle connection, or ``None`` without waiting."""
        with self._lock:
            if not self._idle:
                return None
            connection = self._idle.pop()
            connection.pooled = False
            return connection

    def keep(self, connection: Any) -> bool:
        """Put an idle connection back, to be handed out again; False when ``idle_limit`` are
        idle already (the caller then closes it and frees its slot)."""
        with self._lock:
            if len(self._idle) >= self.idle_limit:
                return False
            connection.pooled = True
            self._idle.append(connection)
            if self._waiting:
                self._wake()
        return True

    def free(self, slot: _Slot) -> None:
        self._taken.discard(slot)
        with self._lock:
            if self._waiting:
                self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for parked in waiting:
            parked.release()

    def drain(self) -> list[Any]:
        """Take every idle connection out (to close them)."""
        with self._lock:
            idle, self._idle = self._idle, []
            for connection in idle:
                connection.pooled = False
        return idle

    def abandoned(self) -> list[Any]:
        """The idle connections, read without the lock: in a forked child, its holder may be a
        thread that does not exist there. The caller replaces this object."""
        return list(self._idle)


# -- the direct path ------------------------------------------------------------------------------


class _Connection:
    """One socket to the origin, with what was received but not yet consumed, and its slot."""

    __slots__ = ("buffer", "poller", "pooled", "slot", "sock")

    def __init__(self, sock: socket.socket, slot: _Slot) -> None:
        self.sock = sock
        self.slot = slot
        self.pooled = False
        self.buffer = bytearray()
        poller: Any = None
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
        self.poller = poller

    def dropped(self) -> bool:
        """Whether the server closed (or wrote to) this idle connection."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if self.poller is not None:
            return bool(self.poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)  # pragma: no cover - no poll()
        return bool(readable)  # pragma: no cover

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - closing a socket fails only if already broken
            pass


class _Lane:
    """The direct path to one origin: its connections, at most ``max_connections`` open at once
    (idle or busy); a thread that needs one more waits, within its deadline, for another to come
    back. See :class:`_Slots` for why an interrupted call cannot leak one."""

    __slots__ = ("origin", "slots", "tls")

    def __init__(
        self, origin: Origin, tls: ssl.SSLContext | None, maxsize: int, max_connections: int
    ) -> None:
        self.origin = origin
        self.tls = tls if origin.scheme == "https" else None
        self.slots = _Slots(max_connections, maxsize)

    # -- connections ----------------------------------------------------------------------------

    def _checkout(self, deadline: Deadline) -> _Connection | _Slot:
        """An idle connection, or a slot for a new one."""
        slots = self.slots
        while True:
            held: _Connection | _Slot | None = slots.take(deadline.at)
            if held is None:
                raise _pool_wait_timeout(self.origin.display, deadline, slots.cap)
            if isinstance(held, _Slot) or not held.dropped():
                return held
            self._discard(held)

    def _checkin(self, connection: _Connection) -> None:
        if not self.slots.keep(connection):
            self._discard(connection)

    def _discard(self, held: _Connection | _Slot) -> None:
        """Close a connection and free its slot (or free a slot whose connection was not made)."""
        if isinstance(held, _Connection):
            held.close()
            held = held.slot
        held.free()

    def close(self) -> None:
        for connection in self.slots.drain():
            self._discard(connection)

    def abandon(self) -> None:
        """Forget every connection (in a forked child). Closing a socket here closes only the
        child's copy of its descriptor: the parent's connection is untouched, as no shutdown
        and no TLS close_notify is sent."""
        slots = self.slots
        self.slots = _Slots(slots.cap, slots.idle_limit)
        for connection in slots.abandoned():
            connection.close()

    def _connect(self, slot: _Slot, timeout: RequestTimeout, deadline: Deadline) -> _Connection:
        origin = self.origin
        where = origin.display
        remaining = _remaining(deadline, where)
        binding = remaining < timeout.connect
        try:
            sock = socket.create_connection(
                (origin.hostname, origin.port), timeout=min(timeout.connect, remaining)
            )
        except (OSError, ValueError) as error:
            raise _connect_error(error, where, timeout, deadline, binding, False) from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                # The handshake is part of connecting: the connect timeout bounds it.
                remaining = _remaining(deadline, where)
                binding = remaining < timeout.connect
                sock.settimeout(min(timeout.connect, remaining))
                sock = self.tls.wrap_socket(sock, server_hostname=origin.hostname)
            return _Connection(sock, slot)
        except BaseException as error:
            sock.close()
            if not isinstance(error, (OSError, ValueError)):
                raise  # the library's own errors, and interrupts, as they are
            raise _connect_error(error, where, timeout, deadline, binding, True) from error

    # -- one exchange ---------------------------------------------------------------------------

    def exchange(
        self,
        target: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        deadline: Deadline,
        ready: Callable[[], Deadline] | None,
        limit: int,
        preload: bool,
    ) -> RESTResponse | StreamedResponse:
        origin = self.origin
        try:
            request = _request_bytes(origin, target, headers)
        except UnicodeEncodeError:
            raise ApiValueError(
                "a request header has characters HTTP cannot carry (set with "
                "set_default_header, user_agent or a credential?)"
            ) from None
        # `held` is the slot until the connection that takes it is made. Whatever happens from
        # here, the connection is closed and its slot freed in the handler below, or (if an
        # interrupt lands before that handler could run) when this frame is dropped.
        held = self._checkout(deadline)
        body: _WireBody | None = None
        try:
            reused = isinstance(held, _Connection)
            if not isinstance(held, _Connection):
                held = self._connect(held, timeout, deadline)
            if ready is not None:
                deadline = ready()
            wire = _Wire(held, origin.display, timeout.read, deadline)
            wire.send(request)
            status, reason, response_headers, body = wire.read_head(limit, reused)
            if preload:
                data = body.read_all()
        except BaseException:
            if body is not None:
                body.connection = None
            self._discard(held)
            raise
        if not preload:
            body.lane = self
            return StreamedResponse(status, reason, response_headers, body)
        # Not in the handler's reach: a connection just put back idle must not be closed there.
        if body.reusable:
            self._checkin(held)
        else:
            self._discard(held)
        return RESTResponse(status, reason, data, response_headers)


def _request_bytes(origin: Origin, target: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {origin.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if "Accept-Encoding" not in headers:
        lines.append("Accept-Encoding: identity")
    lines.append("\r\n")
    head = "\r\n".join(lines)
    # Callers pass checked headers; this cheap count makes sure no line break or NUL slipped in
    # (a header injection) whatever the caller.
    breaks = len(lines)
    if head.count("\n") != breaks or head.count("\r") != breaks or "\0" in head:
        raise ApiValueError(
            "a request header contains a line break or NUL (set with set_default_header, "
            "user_agent or a credential?)"
        )
    return head.encode("latin-1")


class _Wire:
    """Reading and writing one exchange on a connection, every wait bounded by the read timeout
    and by the attempt's deadline."""

    __slots__ = ("connection", "deadline", "read_timeout", "received", "where")

    def __init__(
        self, connection: _Connection, where: str, read_timeout: float, deadline: Deadline
    ) -> None:
        self.connection = connection
        self.where = where
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.received = 0

    def _arm(self) -> bool:
        """Set the socket's timeout for the next wait; whether the deadline is what binds."""
        remaining = self.deadline.remaining()
        if remaining <= 0.0:
            raise _deadline_error(self.where, self.deadline)
        binding = remaining < self.read_timeout
        self.connection.sock.settimeout(remaining if binding else self.read_timeout)
        return binding

    def send(self, data: bytes) -> None:
        binding = self._arm()
        try:
            self.connection.sock.sendall(data)
        except (OSError, ValueError) as error:
            raise self._failure(error, binding) from error

    def fill(self) -> bool:
        """Receive more bytes into the connection's buffer; False at the end of the stream."""
        binding = self._arm()
        try:
            chunk = self.connection.sock.recv(_RECV_SIZE)
        except (OSError, ValueError) as error:
            raise self._failure(error, binding) from error
        if not chunk:
            return False
        self.received += len(chunk)
        self.connection.buffer += chunk
        return True

    def _failure(self, error: OSError | ValueError, binding: bool) -> ApiException:
        if isinstance(error, socket.timeout):
            if binding:
                return _deadline_error(self.where, self.deadline)
            return ApiTimeoutError(
                f"{self.where} did not answer within {self.read_timeout:g} s (read timeout)"
            )
        return transport_error(error, self.where)

    # -- the head -------------------------------------------------------------------------------

    def read_head(
        self, limit: int, reused: bool
    ) -> tuple[int, str, HTTPHeaders, _WireBody]:
        """Status, reason, headers and a reader for the body of the final answer."""
        room, lines = _MAX_HEAD, _MAX_HEADER_LINES  # for all the heads of this answer
        for _ in range(_MAX_INFORMATIONAL + 1):
            head, room = self._head_bytes(reused, room)
            lines -= head.count(b"\n")  # the lines after the status line
            if lines < 0:
                raise _too_many_lines(self.where, "header")
            status, reason, headers, http10 = _parse_head(head, self.where)
            if status >= 200:
                _check_encoding(status, headers)
                return status, reason, headers, self._body(status, headers, http10, limit)
            if status == 101:
                raise _broken(
                    f"{self.where} switched protocols (101) without being asked to"
                )
            reused = False  # an answer has begun: an end of stream now is a cut-short answer
        raise _broken(f"{self.where} sent more than {_MAX_INFORMATIONAL} informational "
                               "answers")

    def _head_bytes(self, reused: bool, room: int) -> tuple[bytes, int]:
        """The next head, without the blank line that ends it, and what is left of ``room``
        bytes once it is counted, however the reads that brought it fell."""
        buffer = self.connection.buffer
        start = 0
        while True:
            # The first blank line, CRLF or bare LF (as some servers send), so that where a head
            # ends never depends on how its bytes arrived.
            end, blank = buffer.find(b"\r\n\r\n", start), 4
            bare = buffer.find(b"\n\n", start)
            if bare >= 0 and (end < 0 or bare < end):
                end, blank = bare, 2
            if end >= 0:
                if end + blank > room:
                    raise _section_too_big(self.where, "status lines and headers")
                head = bytes(buffer[:end])
                del buffer[: end + blank]
                return head, room - end - blank
            if len(buffer) >= room:  # and its blank line is still to come
                raise _section_too_big(self.where, "status lines and headers")
            start = max(0, len(buffer) - 3)
            if not self.fill():
                if not buffer.strip():
                    text = f"{self.where} closed the connection without answering"
                    raise ApiConnectionError(
                        text + (" (an idle connection it had dropped)" if reused else "")
                    ) from http.client.RemoteDisconnected(text)
                raise _broken(
                    f"the response from {self.where} was cut short (in its headers)",
                    http.client.IncompleteRead(b""),
                )

    def _body(
        self, status: int, headers: HTTPHeaders, http10: bool, limit: int
    ) -> _WireBody:
        reusable = not http10
        connection_tokens = headers.get("Connection", "").lower()
        if "close" in connection_tokens:
            reusable = False
        transfer = headers.get("Transfer-Encoding")
        length: int | None
        if transfer is not None:
            if transfer.strip().lower() != "chunked":
                raise _broken(
                    f"{self.where} sent a body in Transfer-Encoding "
                    f"{transfer[:40]!r}, which HTTP/1.1 clients need not read",
                    http.client.UnknownTransferEncoding(),
                )
            if "Content-Length" in headers:
                reusable = False  # both framings: answer by the chunks, trust nothing after
            length = None
            mode = _CHUNKED
        else:
            length = _content_length(headers)
            if length is not None:
                mode = _LENGTH
            elif status in (204, 304):
                mode, length = _LENGTH, 0
            else:
                mode = _UNTIL_CLOSE
                reusable = False
            _check_declared(status, headers, length, limit)
        return _WireBody(self, mode, length, limit, reusable, status, headers)


_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2


def _section_too_big(where: str, what: str) -> ApiProtocolError:
    return _broken(
        f"{where} sent more than {_MAX_HEAD} bytes of {what}; refused",
        http.client.LineTooLong(what),
    )


def _too_many_lines(where: str, kind: str) -> ApiProtocolError:
    return _broken(
        f"{where} sent more than {_MAX_HEADER_LINES} {kind} lines; refused",
        http.client.HTTPException(f"got more than {_MAX_HEADER_LINES} headers"),
    )


def _parse_head(head: bytes, where: str) -> tuple[int, str, HTTPHeaders, bool]:
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    parts = status_line.split(b" ", 2)
    version = parts[0]
    if (
        len(parts) < 2
        or version not in (b"HTTP/1.1", b"HTTP/1.0")
        or len(parts[1]) != 3
        or not parts[1].isdigit()
    ):
        shown = status_line[:60].decode("latin-1")
        raise _broken(
            f"{where} did not answer in HTTP/1.1 (status line {shown!r})",
            http.client.BadStatusLine(shown),
        )
    status = int(parts[1])
    if status < 100:
        raise _broken(f"{where} answered with an invalid status ({status})")
    reason = _printable(parts[2].decode("latin-1")) if len(parts) > 2 else ""
    fields: list[list[str]] = []
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # An obsolete folded line continues the previous field: read as one space (RFC 9112
            # section 5.2), as http.client does on urllib3's path.
            if not fields:
                continue  # nothing to continue: ignored, as http.client does
            fields[-1][1] += " " + line.strip(b" \t").decode("latin-1")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise _broken(f"{where} sent a malformed header line")
        fields.append([name.decode("latin-1"), value.strip(b" \t").decode("latin-1")])
    headers = HTTPHeaders((name, value) for name, value in fields)
    return status, reason, headers, version == b"HTTP/1.0"


def _printable(reason: str) -> str:
    """A reason phrase as shown to the caller: its printable characters, trimmed."""
    return "".join(c for c in reason if c.isprintable()).strip()


class _Body:
    """The body of one answer, read within the attempt's limits; raises only library errors."""

    def read(self, amount: int) -> bytes:  # pragma: no cover - interface
        """Up to ``amount`` bytes (at least one unless the body has ended)."""
        raise NotImplementedError

    def read_all(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            chunk = self.read(_RECV_SIZE)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def release(self) -> None:  # pragma: no cover - interface
        """The caller is done: keep the connection if the body was read to its end."""
        raise NotImplementedError

    def discard(self) -> None:  # pragma: no cover - interface
        """Close the connection, whatever was read."""
        raise NotImplementedError


class _WireBody(_Body):
    """A body read from the direct path's own connection."""

    def __init__(
        self,
        wire: _Wire,
        mode: int,
        length: int | None,
        limit: int,
        reusable: bool,
        status: int,
        headers: HTTPHeaders,
    ) -> None:
        self.wire = wire
        self.connection: _Connection | None = wire.connection
        self.lane: _Lane | None = None
        self.mode = mode
        self.left = length if mode == _LENGTH else 0  # bytes left: in the body or the chunk
        self.limit = limit
        self.total = 0
        self.done = mode == _LENGTH and length == 0
        self.reusable = reusable
        self.status = status
        self.headers = headers

    def read_all(self) -> bytes:
        connection = self.connection
        if self.mode == _LENGTH and connection is not None and not self.done:
            # The usual answer: all of it, often in the buffer already.
            buffer = connection.buffer
            length = self.left or 0
            while len(buffer) < length:
                if not self.wire.fill():
                    raise self._cut_short()
            self.total = length
            self.left = 0
            self.done = True
            if len(buffer) > length:
                self.reusable = False  # bytes beyond the declared length: framing in doubt
            data = bytes(buffer[:length])
            del buffer[:]
            return data
        return super().read_all()

    def read(self, amount: int) -> bytes:
        if self.done or self.connection is None:
            return b""
        if self.mode == _LENGTH:
            return self._take(min(amount, self.left or 0), final=True)
        if self.mode == _UNTIL_CLOSE:
            connection = self.connection
            if not connection.buffer and not self.wire.fill():
                self.done = True
                return b""
            return self._take(min(amount, len(connection.buffer)), final=False)
        if self.left == 0:
            self.left = self._chunk_size()
            if self.left == 0:
                self._trailers()
                self.done = True
                return b""
        data = self._take(min(amount, self.left or 0), final=False)
        self.left = (self.left or 0) - len(data)
        if self.left == 0:
            self._line(expect_empty=True)
        return data

    def _take(self, amount: int, final: bool) -> bytes:
        """``amount`` bytes (at least 1) from the buffer, receiving first when it is empty."""
        connection = self.connection
        assert connection is not None
        while not connection.buffer:
            if not self.wire.fill():
                raise self._cut_short()
        buffer = connection.buffer
        data = bytes(buffer[:amount])
        del buffer[:amount]
        self.total += len(data)
        if self.total > self.limit:
            raise _too_large(self.status, self.headers, "is larger", self.limit)
        if final:
            self.left = (self.left or 0) - len(data)
            if self.left == 0:
                self.done = True
                if connection.buffer:
                    self.reusable = False
        return data

    def _line(self, expect_empty: bool = False) -> bytes:
        connection = self.connection
        assert connection is not None
        buffer = connection.buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end]).rstrip(b"\r")
                del buffer[: end + 1]
                if expect_empty and line:
                    raise _broken(f"a chunk from {self.wire.where} overran its size")
                return line
            if len(buffer) > _MAX_CHUNK_LINE:
                raise _broken(f"{self.wire.where} sent an overlong chunk-size line")
            if not self.wire.fill():
                raise self._cut_short()

    def _chunk_size(self) -> int:
        line = self._line().split(b";", 1)[0].strip()
        if not line or len(line) > 16 or line.strip(b"0123456789abcdefABCDEF"):
            raise _broken(f"{self.wire.where} sent an invalid chunk size")
        size = int(line, 16)
        if self.total + size > self.limit:
            raise _too_large(self.status, self.headers, "is larger", self.limit)
        return size

    def _trailers(self) -> None:
        """Read the trailer section to its blank line: a header section, with the same limits."""
        room, lines = _MAX_HEAD, _MAX_HEADER_LINES
        while True:
            line = self._line()
            room -= len(line) + 2
            if room < 0:
                raise _section_too_big(self.wire.where, "trailers")
            if not line:
                if self.connection is not None and self.connection.buffer:
                    self.reusable = False
                return
            lines -= 1
            if lines < 0:
                raise _too_many_lines(self.wire.where, "trailer")

    def _cut_short(self) -> ApiProtocolError:
        return _broken(
            f"the response from {self.wire.where} was cut short (truncated body)",
            http.client.IncompleteRead(b""),
        )

    def release(self) -> None:
        lane, connection = self.lane, self.connection
        self.connection = None
        if lane is None or connection is None:
            return
        if self.done and self.reusable:
            lane._checkin(connection)
        else:
            lane._discard(connection)

    def discard(self) -> None:
        lane, connection = self.lane, self.connection
        self.connection = None
        if lane is not None and connection is not None:
            lane._discard(connection)


# -- urllib3's path -------------------------------------------------------------------------------


class _Watch:
    """One exchange on urllib3's path: its deadline, the connections it uses and the pool slot it
    holds."""

    __slots__ = (
        "__weakref__",
        "at",
        "connections",
        "deadline",
        "expired",
        "lock",
        "ready",
        "slot",
    )

    def __init__(self, at: float) -> None:
        self.at = at
        self.connections: list[Any] = []
        self.expired = False
        self.lock = threading.Lock()
        #: Called once, when a connection is about to send (see ``RESTClientObject.send``).
        self.ready: Callable[[], Deadline] | None = None
        #: The deadline ``ready`` returned, when it was called.
        self.deadline: Deadline | None = None
        #: The pool slot this exchange took (see ``_PoolQueue``), until urllib3 gives it back.
        self.slot: _Slot | None = None

    def sending(self) -> None:
        """The request is about to leave: the rate limiter's turn, which may move the deadline
        later by the time it waited."""
        ready, self.ready = self.ready, None
        if ready is None:
            return
        deadline = ready()
        self.deadline = deadline
        if deadline.at != self.at:
            _WATCHDOG.move(self, deadline.at)

    def attach(self, connection: Any) -> None:
        with self.lock:
            self.connections.append(connection)
            expired = self.expired
        if expired:
            _shut(connection)

    def expire(self) -> None:
        with self.lock:
            if self.at == float("inf"):
                return  # cancelled
            self.expired = True
            connections = list(self.connections)
        for connection in connections:
            _shut(connection)

    def cancel(self) -> None:
        """The exchange is over: the watchdog forgets it."""
        with self.lock:
            self.at = float("inf")
            self.connections = []
            self.slot = None

    def abandon(self) -> None:
        """The exchange failed or was interrupted: close the connections it was using and free the
        slot it still holds. urllib3 gives the slot back itself when it closes a connection after a
        failure, but not for an answer it had made when an interrupt landed in its own code (the
        answer, holding the connection, is then lost). After :meth:`cancel`, nothing is left."""
        with self.lock:
            self.at = float("inf")
            connections, self.connections = self.connections, []
            slot, self.slot = self.slot, None
        for connection in connections:
            connection.close()
        if slot is not None:
            slot.free()


def _shut(connection: Any) -> None:
    """Interrupt whatever is blocked on ``connection``'s socket (from the watchdog thread)."""
    sock = getattr(connection, "sock", None)
    try:
        sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):  # already closed, or not a plain socket
        pass


class _Watchdog:
    """One daemon thread that cuts off urllib3-path exchanges that outlive their deadline.

    The callers' side is safe against an interrupt landing anywhere: a plain lock taken in
    ``with`` blocks, a C ``SimpleQueue`` to wake the thread (``threading.Condition`` can be left
    holding its lock), and weak references to the watches, so that the registration of an
    exchange abandoned without :meth:`_Watch.cancel` goes with the exchange.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref[_Watch]]] = []
        self._lock = threading.Lock()
        self._wakeup: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._count = itertools.count()

    def add(self, watch: _Watch) -> None:
        """Cut off ``watch``'s exchange at ``watch.at`` unless it is cancelled first."""
        self._push(watch, watch.at)
        # Not Thread.is_alive(): an interrupt inside it can mark the running thread stopped.
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._run, name="openapi_client-watchdog", daemon=True
                    )
                    thread.start()
                    self._thread = thread

    def move(self, watch: _Watch, at: float) -> None:
        """Hold ``watch`` to a new moment; its earlier entry in the heap goes stale."""
        with watch.lock:
            if watch.at == float("inf"):
                return  # cancelled
            watch.at = at
        self._push(watch, at)

    def _push(self, watch: _Watch, at: float) -> None:
        entry = (at, next(self._count), weakref.ref(watch))
        with self._lock:
            heapq.heappush(self._heap, entry)
            first = self._heap[0] is entry
        if first:
            self._wakeup.put(None)

    def live(self) -> int:
        """Exchanges watched now (neither over nor abandoned)."""
        with self._lock:
            entries = list(self._heap)
        return sum(1 for at, _, ref in entries if getattr(ref(), "at", None) == at)

    def _due(self, now: float) -> tuple[list[_Watch], float | None]:
        """The watches whose moment has come, and the seconds until the next one."""
        due: list[_Watch] = []
        heap = self._heap
        with self._lock:
            while heap:
                at, _, ref = heap[0]
                watch = ref()
                if watch is not None and watch.at == at and at > now:
                    return due, at - now
                heapq.heappop(heap)
                if watch is not None and watch.at == at:
                    due.append(watch)
        return due, None

    def _run(self) -> None:
        try:
            while True:
                due, wait = self._due(time.monotonic())
                while due:
                    due.pop().expire()
                try:
                    self._wakeup.get(timeout=wait)
                except queue.Empty:
                    pass
        finally:  # pragma: no cover - only an interpreter shutting down stops this thread
            self._thread = None

    def after_fork(self) -> None:
        self._heap = []
        self._lock = threading.Lock()
        self._wakeup = queue.SimpleQueue()
        self._thread = None


_WATCHDOG = _Watchdog()
_CURRENT_WATCH = threading.local()


def _after_fork_in_child() -> None:
    _WATCHDOG.after_fork()
    _CURRENT_WATCH.watch = None


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _PoolQueue:
    """The connections of one urllib3 pool (its ``QueueCls``), counted by :class:`_Slots` like the
    direct path's.

    urllib3 keeps its connections in a ``queue.LifoQueue`` holding one item per connection it may
    open (the connection, or ``None`` for one to make). That queue's methods run Python code under
    its lock, so an interrupt can leave the lock held (every later request then hangs) or an item
    taken and lost; and an interrupt that lands in urllib3's own code after it made an answer loses
    the answer and the connection it holds. Here a slot is taken by the exchange running in this
    thread (its :class:`_Watch`) and then by its connection, and comes back when urllib3 gives
    either back, or when nothing references it any more.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.slots = _Slots(maxsize, maxsize)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """An idle connection, or ``None`` for urllib3 to make one (``queue.Empty`` if neither
        came within ``timeout``; without ``block``, an idle connection only)."""
        if not block:
            connection = self.slots.take_idle()
            if connection is None:
                raise queue.Empty
            return connection
        until = float("inf") if timeout is None else time.monotonic() + timeout
        held = self.slots.take(until)
        if held is None:
            raise queue.Empty
        watch: _Watch | None = getattr(_CURRENT_WATCH, "watch", None)
        if isinstance(held, _Slot):
            if watch is not None:
                watch.slot = held  # until the new connection takes it (_before_request)
            return None
        if watch is not None:
            watch.slot = held.slot
        return held

    def put(self, connection: Any, block: bool = True, timeout: float | None = None) -> None:
        """Take a connection back; ``None`` gives up the slot of the exchange in this thread."""
        if connection is None:
            # urllib3 fills a new pool with a None per connection it may open (this queue counts
            # them itself), and puts one back when it closed the connection of a failed exchange.
            watch: _Watch | None = getattr(_CURRENT_WATCH, "watch", None)
            if watch is not None and watch.slot is not None:
                given_up, watch.slot = watch.slot, None
                given_up.free()
            return
        if connection.pooled:
            return  # put back already, by a put() an interrupt cut short after its work was done
        slot: _Slot | None = getattr(connection, "slot", None)
        if slot is None:
            connection.close()  # not one of this pool's connections
        elif connection.sock is None or not self.slots.keep(connection):
            connection.close()
            slot.free()

    def qsize(self) -> int:
        """Connections that can be had without waiting (idle, or slots free)."""
        slots = self.slots
        return slots.cap - slots.open + slots.idle


def _before_request(connection: Any) -> None:
    """Report ``connection`` to the exchange about to send on it (its slot, and its watchdog);
    first close it if its last answer left the framing in doubt (urllib3 puts a connection back in
    its pool as soon as a body is read to the end, before the client can close it)."""
    if getattr(connection, "framing_in_doubt", False):
        connection.framing_in_doubt = False
        connection.close()  # http.client opens a new socket for the request
    watch: _Watch | None = getattr(_CURRENT_WATCH, "watch", None)
    if watch is not None:
        if watch.slot is not None:
            connection.slot = watch.slot
        watch.attach(connection)
        watch.sending()


class _WatchedHTTPConnection(urllib3_connection.HTTPConnection):
    """urllib3's connection, reporting to the exchange that sends on it."""

    framing_in_doubt = False
    slot: _Slot | None = None
    pooled = False

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _before_request(self)
        return super().request(*args, **kwargs)

    def close(self) -> None:
        if not self.pooled:  # else a stale holder's close (see _Slots)
            super().close()


class _WatchedHTTPSConnection(urllib3_connection.HTTPSConnection):
    """urllib3's TLS connection, reporting to the exchange that sends on it."""

    framing_in_doubt = False
    slot: _Slot | None = None
    pooled = False

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _before_request(self)
        return super().request(*args, **kwargs)

    def close(self) -> None:
        if not self.pooled:  # else a stale holder's close (see _Slots)
            super().close()


class _WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection
    QueueCls = _PoolQueue  # type: ignore[assignment]


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
    QueueCls = _PoolQueue  # type: ignore[assignment]


class _Urllib3Body(_Body):
    """A body read from a urllib3 response, within the same limits as the direct path."""

    def __init__(
        self,
        response: Any,
        watch: _Watch,
        where: str,
        timeout: RequestTimeout,
        deadline: Deadline,
        limit: int,
    ) -> None:
        self.response: Any = response
        self.watch = watch
        self.where = where
        self.timeout = timeout
        self.deadline = deadline
        self.limit = limit
        self.total = 0
        self.done = False

    def framing_in_doubt(self) -> None:
        """Make sure the connection is not used again as it is."""
        connection = getattr(self.response, "connection", None)
        if isinstance(connection, (_WatchedHTTPConnection, _WatchedHTTPSConnection)):
            connection.framing_in_doubt = True

    def read(self, amount: int) -> bytes:
        response = self.response
        if self.done or response is None:
            return b""
        if self.deadline.remaining() <= 0.0:
            raise _deadline_error(self.where, self.deadline)
        try:
            data: bytes = response.read(amount, decode_content=False)
        except Exception as error:
            if self.watch.expired or self.deadline.remaining() <= 0.0:
                raise _deadline_error(self.where, self.deadline) from error
            if isinstance(error, _TRANSPORT_ERRORS):
                raise transport_error(error, self.where, self.timeout) from error
            raise
        if self.watch.expired:
            raise _deadline_error(self.where, self.deadline)
        if not data:
            self.done = True
            return b""
        self.total += len(data)
        if self.total > self.limit:
            raise _too_large(
                int(response.status), HTTPHeaders(response.headers.items()), "is larger",
                self.limit,
            )
        return data

    def read_all(self) -> bytes:
        try:
            data = super().read_all()
        except BaseException:
            self.discard()
            raise
        self.release()
        return data

    # release() and discard() forget the response only once it is given back: if an interrupt
    # lands halfway through release(), the discard() that follows finishes the work.

    def release(self) -> None:
        response = self.response
        self.watch.cancel()
        if response is not None:
            if self.done:
                response.release_conn()
            else:
                _discard_urllib3(response)
            self.response = None

    def discard(self) -> None:
        response = self.response
        self.watch.cancel()
        if response is not None:
            _discard_urllib3(response)
            self.response = None


def _discard_urllib3(response: Any) -> None:
    """Close the response's connection (its framing is in doubt) and hand the slot back."""
    try:
        response.close()
        response.release_conn()
    except Exception:  # pragma: no cover - closing a broken connection may complain
        pass


# -- what the caller gets without preloading -----------------------------------------------------


class StreamedResponse:
    """An unread answer (``_preload_content=False``): ``status``, ``reason``, ``headers``, and a
    body to read with :meth:`read` or :meth:`stream`, or all at once as :attr:`data`.

    Reading is held to the same limits as any answer (the attempt's deadline, the read
    timeout, ``max_response_size``) and raises only the library's exceptions. Call
    :meth:`release_conn` (or use it as a context manager) when done; a body read to its end
    releases its connection by itself.
    """

    def __init__(self, status: int, reason: str, headers: HTTPHeaders, body: _Body) -> None:
        self.status = status
        self.reason = reason or http.client.responses.get(status, "")
        self.headers = headers
        self._body: _Body | None = body
        self._data: bytes | None = None

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all that is left when ``amt`` is None)."""
        body = self._body
        if body is None:
            return b""
        try:
            if amt is None:
                data = body.read_all()
                self._finish()
                return data
            data = body.read(max(1, amt))
        except BaseException:
            self._body = None
            body.discard()
            raise
        if not data:
            self._finish()
        return data

    def stream(self, amt: int = 65536) -> Any:
        """The body in pieces of at most ``amt`` bytes."""
        while True:
            data = self.read(amt)
            if not data:
                return
            yield data

    __iter__ = stream

    @property
    def data(self) -> bytes:
        """The whole body (read on first use)."""
        if self._data is None:
            self._data = self.read()
        return self._data

    def _finish(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.release()

    def release_conn(self) -> None:
        """Done with this answer: its connection is kept if the body was read to the end,
        closed otherwise."""
        self._finish()

    def close(self) -> None:
        """Close the connection, whatever was read."""
        body, self._body = self._body, None
        if body is not None:
            body.discard()

    @property
    def closed(self) -> bool:
        return self._body is None

    def getheaders(self) -> HTTPHeaders:
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        value: str | None = self.headers.get(name, default)
        return value

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release_conn()

    def __repr__(self) -> str:
        return f"StreamedResponse(status={self.status}, reason={self.reason!r})"


# -- failures -------------------------------------------------------------------------------------

# What urllib3, http.client and sockets raise for a failed exchange. urllib3 1.26 reports a
# certificate for another host name as a CertificateError, which is a ValueError.
_TRANSPORT_ERRORS = (
    urllib3_errors.HTTPError,
    OSError,
    http.client.HTTPException,
    ValueError,
)


def _broken(message: str, cause: BaseException | None = None) -> ApiProtocolError:
    """An :class:`ApiProtocolError` for HTTP this module's reader refused, with the matching
    ``http.client`` exception as its cause (there is no lower-level one)."""
    error = ApiProtocolError(message)
    error.__cause__ = cause if cause is not None else http.client.HTTPException(message)
    return error


def _remaining(deadline: Deadline, where: str) -> float:
    remaining = deadline.remaining()
    if remaining <= 0.0:
        raise _deadline_error(where, deadline)
    return remaining


def _deadline_error(where: str, deadline: Deadline) -> ApiTimeoutError:
    if deadline.setting == "call_timeout":
        text = f"the exchange with {where} ran out of the {deadline.describe()}"
    else:
        text = f"the exchange with {where} did not finish within {deadline.describe()}"
    error = ApiTimeoutError(text)
    error.__cause__ = TimeoutError(deadline.describe())  # replaced by `from` where one exists
    return error


def _pool_wait_timeout(where: str, deadline: Deadline, cap: int) -> ApiTimeoutError:
    error = ApiTimeoutError(
        f"no connection to {where} came free within the {deadline.describe()} "
        f"(max_connections = {cap} were all busy)"
    )
    error.__cause__ = TimeoutError(deadline.describe())
    return error


def _connect_error(
    error: OSError | ValueError,
    where: str,
    timeout: RequestTimeout,
    deadline: Deadline,
    binding: bool,
    handshake: bool,
) -> ApiException:
    """The library's exception for a failure to connect (``binding``: the deadline, not the
    connect timeout, limited the wait)."""
    if isinstance(error, socket.timeout):
        if binding:
            return _deadline_error(where, deadline)
        suffix = " (TLS handshake)" if handshake else ""
        return ApiTimeoutError(
            f"connecting to {where} timed out after {timeout.connect:g} s{suffix}"
        )
    if handshake:
        return transport_error(error, where, timeout, handshake=True)
    reason = _connect_reason(error)
    return ApiConnectionError(
        f"could not connect to {where} ({reason}); check Configuration.host and the network"
    )


def _connect_reason(error: BaseException) -> str:
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
            f"could not connect to {where} ({_connect_reason(cause)}); check "
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
