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

This module is the HTTP transport's public face (:class:`RESTClientObject`, :class:`RESTResponse`,
:class:`StreamedResponse`, :class:`InsecureTLSWarning`, and ``ApiException`` for generated-style
code). Its insides are in :mod:`openapi_client.http`, one concern per module; what it shares with
the WebSocket session (origins, TLS, the mapping of transport failures) in
:mod:`openapi_client.net`.
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode, urlsplit

from openapi_client.configuration import Configuration, Timeout, check_timeout
from openapi_client.deadline import Deadline
from openapi_client.exceptions import ApiException, ApiValueError, exception_for_response
from openapi_client.headers import check_header
from openapi_client.http.body import RESTResponse, StreamedResponse
from openapi_client.http.direct import DirectPath
from openapi_client.http.slots import Slots
from openapi_client.http.timeouts import RequestTimeout
from openapi_client.net.origin import Origin
from openapi_client.net.tls import InsecureTLSWarning, client_context, warn_unverified
from openapi_client.redaction import install_filter

if TYPE_CHECKING:  # pragma: no cover
    import urllib3

    from openapi_client.http.urllib3_path import Urllib3Path

# Re-exported: generated clients import ApiException from here.
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
        if not configuration.verify_ssl:
            warn_unverified("your requests and token", stacklevel=3)
        self.uses_proxy = bool(configuration.proxy)
        #: Whether direct requests take the direct path (see the module docstring).
        self.direct = (
            bool(configuration.fast_path)
            and not self.uses_proxy
            and not _urllib3_replaced()
            and not isinstance(configuration.assert_hostname, str)
        )
        # Loading a CA bundle costs about 30 ms: done now when TLS is configured or the host is
        # https (so that a bad file is a setting error here), else when an https lane first
        # needs it. urllib3's path loads its own at once.
        tls: ssl.SSLContext | None = None
        if self.direct and (
            configuration.ssl_ca_cert
            or configuration.cert_file
            or configuration.key_file
            or configuration.host.startswith("https:")
        ):
            tls = client_context(configuration)
        self._direct = DirectPath(configuration, tls)
        self._pools_size = pools_size
        # urllib3's path, and urllib3 itself, are loaded only for a client that takes it.
        self._urllib3: Urllib3Path | None = None
        if not self.direct:
            self._urllib3_path()
        self._timeouts: dict[Any, RequestTimeout] = {}
        self._closed = False

    @property
    def pool_manager(self) -> urllib3.PoolManager:
        """urllib3's ``PoolManager`` (a ``ProxyManager`` through a proxy) for requests that take
        urllib3's path."""
        return self._urllib3_path().pool_manager

    def _urllib3_path(self) -> Urllib3Path:
        path = self._urllib3
        if path is None:
            from openapi_client.http.urllib3_path import Urllib3Path

            path = self._urllib3 = Urllib3Path(self.configuration, self._pools_size)
        return path

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
        result = RequestTimeout(float(connect), float(read))
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
            direct = self._direct
            lane = direct.lanes.get(origin.origin)
            if lane is None:
                lane = direct.lane(origin)
            return lane.exchange(
                target, headers, timeout, deadline, ready, limit, preload_content
            )
        return self._urllib3_path().send(
            origin, target, headers, timeout, deadline, ready, limit, preload_content
        )

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
        pools = self._urllib3.slots() if self._urllib3 is not None else []
        return self._direct.slots() + pools

    def close(self) -> None:
        """Close every pooled connection; the client refuses requests from then on."""
        self._closed = True
        self._direct.close()
        if self._urllib3 is not None:
            self._urllib3.close()

    def after_fork(self) -> None:
        """In a child process just forked: drop the parent's connections without touching them
        (the parent keeps using them), and start afresh."""
        self._direct.after_fork()
        if self._urllib3 is not None:
            self._urllib3.after_fork()


def _urllib3_replaced() -> bool:
    """Whether urllib3's connection classes have been replaced (by
    ``urllib3.http2.inject_into_urllib3()``, for instance); not before urllib3 is imported."""
    if "urllib3.connectionpool" not in sys.modules:
        return False
    from openapi_client.http.pools import urllib3_is_stock

    return not urllib3_is_stock()
