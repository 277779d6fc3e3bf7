"""From a parsed request to a JSON-RPC answer: method lookup, credentials, credits, handler."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from openapi_client.rate_limit import RateLimit

from .methods import METHODS, Context
from .rpc import (
    INTERNAL_SERVER_ERROR,
    METHOD_NOT_FOUND,
    TOO_MANY_REQUESTS,
    RpcError,
    error_body,
    success_body,
)

__all__ = ["AccountLimits", "Dispatcher"]


class AccountLimits:
    """One :class:`RateLimit` per sub-account, created on first use.

    :param per_second: sustained requests per second of each pool.
    :param burst: requests a full pool allows back to back.
    """

    def __init__(self, per_second: float, burst: int) -> None:
        RateLimit(per_second, burst)  # check the numbers now, not on the first request
        self._per_second = per_second
        self._burst = burst
        self._lock = threading.Lock()
        self._pools: dict[str, RateLimit] = {}

    def try_acquire(self, account: str) -> bool:
        """Spend one request from ``account``'s pool; False when the pool is empty."""
        pool = self._pools.get(account)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(account, RateLimit(self._per_second, self._burst))
        return pool.try_acquire()

    def describe(self) -> str:
        return f"{self._burst} requests at once, then {self._per_second:g} a second"


class Dispatcher:
    """Answers API requests.

    :param context: the state and credentials the methods use.
    :param limits: the credit pools to charge, or None to allow any request rate.
    """

    def __init__(self, context: Context, limits: AccountLimits | None) -> None:
        self._context = context
        self._limits = limits

    def answer(
        self,
        method_path: str,
        target: str,
        query: Mapping[str, str],
        authorization: str | None,
        client_ip: str,
        us_in: int,
    ) -> tuple[int, bytes]:
        """The HTTP status and encoded envelope for one request.

        :param method_path: the path below ``/api/v2``, e.g. ``/public/test``.
        :param target: the raw path and query, which a request signature covers.
        :param query: the decoded query parameters.
        :param authorization: the ``Authorization`` header, if any.
        :param client_ip: the caller's address, the account of anonymous requests.
        :param us_in: when the request arrived, in microseconds since the epoch.
        """
        try:
            method = METHODS.get(method_path)
            if method is None:
                raise RpcError.of(
                    METHOD_NOT_FOUND, {"reason": f"no method {method_path.lstrip('/')!r}"}
                )
            if method.private:
                account: str | None = self._context.auth.authorize(authorization, target)
            elif self._limits is not None:
                account = self._context.auth.client_of(authorization)
            else:
                account = None
            if self._limits is not None:
                key = f"client:{account}" if account is not None else f"ip:{client_ip}"
                if not self._limits.try_acquire(key):
                    raise RpcError.of(
                        TOO_MANY_REQUESTS,
                        {"reason": f"rate limit exhausted ({self._limits.describe()})"},
                    )
            result = method.handler(self._context, query)
        except RpcError as error:
            return error.status, error_body(error, us_in)
        except Exception as exc:
            bug = RpcError.of(
                INTERNAL_SERVER_ERROR,
                {"reason": f"simulator error: {type(exc).__name__}: {exc}"},
                status=500,
            )
            return bug.status, error_body(bug, us_in)
        return 200, success_body(result, us_in)
