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

import logging
import ssl
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3 import exceptions as urllib3_errors

from openapi_client.configuration import Configuration, Timeout, check_timeout
from openapi_client.deadline import Deadline
from openapi_client.exceptions import (
    ApiException,
    ApiValueError,
    OpenApiException,
    exception_for_response,
)
from openapi_client.headers import HTTPHeaders, check_header
from openapi_client.http.body import RESTResponse, StreamedResponse, finish
from openapi_client.http.direct import Lane
from openapi_client.http.message import broken, check_answer, printable
from openapi_client.http.pools import (
    _CURRENT_WATCH,
    NO_RETRIES,
    PoolQueue,
    WatchedHTTPConnectionPool,
    WatchedHTTPSConnectionPool,
    urllib3_is_stock,
)
from openapi_client.http.slots import Slots
from openapi_client.http.timeouts import (
    RequestTimeout,
    deadline_error,
    pool_wait_timeout,
    time_left,
)
from openapi_client.http.urllib3_path import TRANSPORT_ERRORS, Urllib3Body, discard_urllib3
from openapi_client.http.watchdog import WATCHDOG, Watch
from openapi_client.net.errors import transport_error as transport_error
from openapi_client.net.origin import Origin
from openapi_client.net.tls import InsecureTLSWarning, client_context
from openapi_client.redaction import install_filter

# Re-exported: generated clients import ApiException from here; the WebSocket session imports
# transport_error from here until it imports it from openapi_client.net.errors.
__all__ = [
    "ApiException",
    "InsecureTLSWarning",
    "RESTClientObject",
    "RESTResponse",
    "StreamedResponse",
]

logger = install_filter(logging.getLogger(__name__))


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
            self._tls = client_context(configuration)
        pool_args: dict[str, Any] = {
            "num_pools": pools_size,
            "maxsize": max_connections,
            "block": True,
            "retries": NO_RETRIES,
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
        stock = urllib3_is_stock()
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
        self._lanes: dict[str, Lane] = {}
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
                "http": WatchedHTTPConnectionPool,
                "https": WatchedHTTPSConnectionPool,
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

    def _lane(self, origin: Origin) -> Lane:
        with self._lanes_lock:
            lane = self._lanes.get(origin.origin)
            if lane is None:
                tls = self._tls
                if tls is None and origin.scheme == "https":
                    tls = self._tls = client_context(self.configuration)
                lane = Lane(origin, tls, self._maxsize, self._max_connections)
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
        watch = Watch(deadline.at)
        # The connection calls `ready` once it is connected, just before the request leaves.
        watch.ready = ready
        response: Any = None
        body: Urllib3Body | None = None
        # Whatever happens from here (an interrupt included), the handler gives back what the
        # exchange holds: the answer and its connection, the watchdog's registration, and a slot
        # urllib3 did not give back itself (see Watch.abandon).
        try:
            response = self._urlopen(
                origin.origin + target, headers, timeout, deadline, watch, where
            )
            body = Urllib3Body(response, watch, where, timeout, watch.deadline or deadline, limit)
            status = int(response.status)
            reason = printable(response.reason or "")
            response_headers = HTTPHeaders(response.headers.items())
            if "Transfer-Encoding" in response_headers and "Content-Length" in response_headers:
                # Both framings: http.client reads by the chunks; trust nothing after them.
                body.framing_in_doubt()
            if 100 <= status <= 199:
                # urllib3 (through http.client) takes an informational answer other than 100 as
                # the answer, and leaves the real one unread; the connection cannot be trusted.
                raise broken(
                    f"{where} sent an informational answer ({status}) that urllib3's path "
                    "cannot skip"
                )
            check_answer(status, reason, response_headers, limit)
            return finish(status, reason, response_headers, body, preload_content)
        except BaseException:
            if body is not None:
                body.discard()
            elif response is not None:
                discard_urllib3(response)
            watch.abandon()
            raise

    def _urlopen(
        self,
        url: str,
        headers: Mapping[str, str],
        timeout: RequestTimeout,
        deadline: Deadline,
        watch: Watch,
        where: str,
    ) -> Any:
        """urllib3's answer to ``GET url``, its head read; raises the library's errors (and
        interrupts as they are). The caller gives back what the exchange holds."""
        remaining = time_left(deadline, where)
        WATCHDOG.add(watch)
        _CURRENT_WATCH.watch = watch
        try:
            return self.pool_manager.urlopen(
                "GET",
                url,
                headers=dict(headers),
                retries=NO_RETRIES,
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
                raise pool_wait_timeout(where, deadline, self._max_connections) from error
            # The socket timeout is capped at what is left of the deadline, so on a busy machine
            # it can fire before the watchdog marks the deadline expired: the deadline ran out.
            current = watch.deadline or deadline
            if watch.expired or current.remaining() <= 0.0:
                raise deadline_error(where, current) from error
            if isinstance(error, UnicodeEncodeError) or (
                type(error) is ValueError and "header" in str(error)
            ):  # http.client refusing a header name or value
                raise ApiValueError(
                    "a request header is not valid HTTP (a line break or control character in "
                    "a header set with set_default_header, user_agent or a credential?)"
                ) from None
            if isinstance(error, TRANSPORT_ERRORS):
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

    def _slots(self) -> list[Slots]:
        """The connection slots of every origin, on both paths (what the client holds)."""
        with self._lanes_lock:
            lanes = list(self._lanes.values())
        pools = self.pool_manager.pools
        held: list[Any] = [pools[key].pool for key in pools.keys()]  # urllib3's QueueCls
        return [lane.slots for lane in lanes] + [
            pool_queue.slots for pool_queue in held if isinstance(pool_queue, PoolQueue)
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
