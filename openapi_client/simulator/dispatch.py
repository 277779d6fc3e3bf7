"""From a request to a JSON-RPC answer: method lookup, transport, credentials, credits, handler.

One core (:meth:`Dispatcher.call`) serves both transports; :meth:`Dispatcher.answer` is the thin
HTTP shell around it (the WebSocket shell lives in :mod:`.ws`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .credits import AccountCredits
from .methods import METHODS, Call, Context, must_be_websocket
from .recording import HTTP
from .rpc import (
    INTERNAL_SERVER_ERROR,
    METHOD_NOT_FOUND,
    TOO_MANY_REQUESTS,
    RpcError,
    error_body,
    success_body,
)

__all__ = ["Dispatcher"]


class Dispatcher:
    """Answers API requests.

    :param context: the state and credentials the methods use.
    :param credits: the credit pools to charge, or None to allow any request rate.
    """

    def __init__(self, context: Context, credits: AccountCredits | None) -> None:
        self.context = context
        self._credits = credits

    def call(self, method_path: str, params: Mapping[str, Any], call: Call) -> Any:
        """Run one request and return its result.

        :param method_path: the path below ``/api/v2``, e.g. ``/public/test``.
        :param params: the request's parameters (strings over HTTP, JSON values over a
            WebSocket).
        :param call: who sent it, over what.
        :raises RpcError: the error to answer instead.
        """
        method = METHODS.get(method_path)
        if method is None:
            reason = f"no method {method_path.lstrip('/')!r}"
            raise RpcError.of(METHOD_NOT_FOUND, {"reason": reason})
        if call.transport == HTTP and method.refused_over_http(self.context):
            raise must_be_websocket()
        account = self._account(method.private, params, call)
        if self._credits is not None:
            key = f"client:{account}" if account is not None else f"ip:{call.client_ip}"
            if not self._credits.spend(key):
                raise RpcError.of(
                    TOO_MANY_REQUESTS,
                    {"reason": f"rate limit exhausted ({self._credits.describe()})"},
                )
        call.client_id = account
        return method.handler(self.context, call, params)

    def _account(self, private: bool, params: Mapping[str, Any], call: Call) -> str | None:
        """Who the request is authenticated as; checked (13009) for private methods."""
        auth = self.context.auth
        if call.transport == HTTP:
            if private:
                return auth.authorize(call.authorization, call.target, call.connection_id)
            if self._credits is not None:
                return auth.client_of(call.authorization, call.connection_id)
            return None
        token = params.get("access_token")
        if token is not None:
            if not isinstance(token, str):
                raise RpcError.invalid_param("access_token", "must be a string")
            return auth.check_token(token, call.connection_id)[0]
        connection = call.websocket
        if connection.access_token is not None:
            if private:
                return auth.check_token(connection.access_token, call.connection_id)[0]
            return connection.client_id
        if private:
            raise RpcError.unauthorized(
                "this connection is not authenticated: call public/auth on it first, "
                "or pass params.access_token"
            )
        return None

    def answer(
        self, method_path: str, query: Mapping[str, str], call: Call, us_in: int
    ) -> tuple[int, bytes]:
        """The HTTP status and encoded envelope for one HTTP request.

        :param method_path: the path below ``/api/v2``, e.g. ``/public/test``.
        :param query: the decoded query parameters.
        :param call: who sent it.
        :param us_in: when the request arrived, in microseconds since the epoch.
        """
        try:
            result = self.call(method_path, query, call)
        except RpcError as error:
            return error.status, error_body(error, us_in)
        except Exception as exc:
            bug = internal_error(exc)
            return bug.status, error_body(bug, us_in)
        return 200, success_body(result, us_in)


def internal_error(exc: Exception) -> RpcError:
    """The answer to a bug in the simulator: 11094 with what went wrong."""
    return RpcError.of(
        INTERNAL_SERVER_ERROR,
        {"reason": f"simulator error: {type(exc).__name__}: {exc}"},
        status=500,
    )
