"""urllib3's path: one exchange through urllib3's ``PoolManager.urlopen``, and its answer read
within the same limits as the direct path's."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any, Callable

import urllib3
from urllib3 import exceptions as urllib3_errors

from openapi_client.configuration import Configuration
from openapi_client.deadline import Deadline
from openapi_client.exceptions import OpenApiException
from openapi_client.headers import HTTPHeaders
from openapi_client.http.body import Body, finish
from openapi_client.http.message import (
    broken,
    check_answer,
    printable,
    request_head,
    too_large,
)
from openapi_client.http.pools import (
    CURRENT_WATCH,
    NO_RETRIES,
    PoolQueue,
    WatchedHTTPConnection,
    WatchedHTTPConnectionPool,
    WatchedHTTPSConnection,
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
from openapi_client.http.watchdog import WATCHDOG, Watch
from openapi_client.net.errors import EXCHANGE, TLS_HANDSHAKE, transport_error
from openapi_client.net.origin import Origin
from openapi_client.net.tls import client_context

__all__ = ["Urllib3Path"]

# What urllib3, http.client and sockets raise for a failed exchange. urllib3 1.26 reports a
# certificate for another host name as a CertificateError, which is a ValueError.
TRANSPORT_ERRORS = (
    urllib3_errors.HTTPError,
    OSError,
    http.client.HTTPException,
    ValueError,
)


class Urllib3Body(Body):
    """A body read from a urllib3 response, within the same limits as the direct path."""

    def __init__(
        self,
        response: Any,
        watch: Watch,
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
        if isinstance(connection, (WatchedHTTPConnection, WatchedHTTPSConnection)):
            connection.framing_in_doubt = True

    def read(self, amount: int) -> bytes:
        response = self.response
        if self.done or response is None:
            return b""
        if self.deadline.remaining() <= 0.0:
            raise deadline_error(self.where, self.deadline)
        try:
            data: bytes = response.read(amount, decode_content=False)
        except Exception as error:
            if self.watch.expired or self.deadline.remaining() <= 0.0:
                raise deadline_error(self.where, self.deadline) from error
            if isinstance(error, TRANSPORT_ERRORS):
                raise transport_error(error, self.where, self.timeout) from error
            raise
        if self.watch.expired:
            raise deadline_error(self.where, self.deadline)
        if not data:
            self.done = True
            return b""
        self.total += len(data)
        if self.total > self.limit:
            raise too_large(
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
                discard_urllib3(response)
            self.response = None

    def discard(self) -> None:
        response = self.response
        self.watch.cancel()
        if response is not None:
            discard_urllib3(response)
            self.response = None


def discard_urllib3(response: Any) -> None:
    """Close the response's connection (its framing is in doubt) and hand the slot back."""
    try:
        response.close()
        response.release_conn()
    except Exception:  # pragma: no cover - closing a broken connection may complain
        pass


class Urllib3Path:
    """urllib3's path: a ``PoolManager`` (a ``ProxyManager`` through a proxy) whose pools keep
    the client's promises while urllib3's connection classes are its own (see
    :mod:`~openapi_client.http.pools`), and urllib3's own pools otherwise."""

    def __init__(self, configuration: Configuration, pools_size: int) -> None:
        self.configuration = configuration
        pool_args: dict[str, Any] = {
            "num_pools": pools_size,
            "maxsize": configuration.max_connections,
            "block": True,
            "retries": NO_RETRIES,
            # urllib3 checks the certificate's names itself on the contexts it is given (and
            # urllib3 1.26 gives the TLS library no server name for an IP address).
            "ssl_context": client_context(configuration, check_hostname=False),
        }
        if configuration.assert_hostname is not None:
            pool_args["assert_hostname"] = configuration.assert_hostname
        proxy = configuration.proxy
        if proxy is not None and proxy.lower().startswith("https:"):
            # The proxy's own TLS when an https exchange is tunnelled through it: urllib3 1.26
            # checks no name on this one itself, so the TLS library does.
            pool_args["proxy_ssl_context"] = client_context(configuration)
        self._pool_args = pool_args
        #: Whether the connections report to their exchange (urllib3's classes are its own).
        self.watched = urllib3_is_stock()
        self.pool_manager = self._new_pool_manager()

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
        if self.watched:
            # Pools whose connections report to the watchdog; otherwise urllib3's own.
            manager.pool_classes_by_scheme = {
                "http": WatchedHTTPConnectionPool,
                "https": WatchedHTTPSConnectionPool,
            }
        return manager

    def send(
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
        if ready is not None and not self.watched:
            deadline = ready()
            ready = None
        # The direct path's checks of the request: http.client would refuse a bad header with a
        # bare ValueError.
        request_head(origin, target, headers)
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
        CURRENT_WATCH.watch = watch
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
                cap = self.configuration.max_connections
                raise pool_wait_timeout(where, deadline, cap) from error
            # The socket timeout is capped at what is left of the deadline, so on a busy machine
            # it can fire before the watchdog marks the deadline expired: the deadline ran out.
            current = watch.deadline or deadline
            if watch.expired or current.remaining() <= 0.0:
                raise deadline_error(where, current) from error
            if isinstance(error, TRANSPORT_ERRORS):
                # Before the request began, urllib3 was connecting; with urllib3's own pools, when
                # is not known.
                stage = EXCHANGE if watch.requested or not self.watched else TLS_HANDSHAKE
                raise transport_error(error, where, timeout, stage) from error
            raise
        finally:
            CURRENT_WATCH.watch = None

    def slots(self) -> list[Slots]:
        """The connection slots of every pool (none while the pools are urllib3's own)."""
        pools = self.pool_manager.pools
        held: list[Any] = [pools[key].pool for key in pools.keys()]  # urllib3's QueueCls
        return [pool_queue.slots for pool_queue in held if isinstance(pool_queue, PoolQueue)]

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool_manager.clear()

    def after_fork(self) -> None:
        """In a child process just forked: new pools, the parent's left alone."""
        self.pool_manager = self._new_pool_manager()
