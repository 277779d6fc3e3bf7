"""urllib3's path: reading an answer urllib3 made, within the same limits as the direct path."""

from __future__ import annotations

import http.client
from typing import Any

from urllib3 import exceptions as urllib3_errors

from openapi_client.deadline import Deadline
from openapi_client.headers import HTTPHeaders
from openapi_client.http.body import Body
from openapi_client.http.message import too_large
from openapi_client.http.pools import WatchedHTTPConnection, WatchedHTTPSConnection
from openapi_client.http.timeouts import RequestTimeout, deadline_error
from openapi_client.http.watchdog import Watch
from openapi_client.net.errors import transport_error

__all__ = ["TRANSPORT_ERRORS", "Urllib3Body", "discard_urllib3"]

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
