"""From a request to a JSON-RPC answer: method lookup, transport, credentials, credits, handler.

One core (:meth:`Dispatcher.call`) serves both transports; :meth:`Dispatcher.answer` is the thin
HTTP shell around it (the WebSocket shell lives in :mod:`.ws`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .auth import Principal
from .credits import AccountCredits
from .methods import METHODS, Call, Context, must_be_websocket
from .recording import HTTP
from .rpc import (
    INTERNAL_SERVER_ERROR,
    METHOD_NOT_FOUND,
    NO_ID,
    TOO_MANY_REQUESTS,
    Envelope,
    RpcError,
)

__all__ = ["Dispatcher"]


class Dispatcher:
    """Answers API requests.

    :param context: the state and credentials the methods use.
    :param credits: the credit pools to charge, or None to allow any request rate.
    :param envelope: wraps every answer, over either transport.
    """

    def __init__(
        self, context: Context, credits: AccountCredits | None, envelope: Envelope
    ) -> None:
        self.context = context
        self._credits = credits
        self.envelope = envelope

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
            raise RpcError.of(METHOD_NOT_FOUND, explanation=reason)
        if call.transport == HTTP and method.refused_over_http(self.context):
            raise must_be_websocket()
        principal = self._principal(params, call) if method.private else None
        account = principal.client_id if principal else self._public_account(params, call)
        if self._credits is not None:
            key = f"client:{account}" if account is not None else f"ip:{call.client_ip}"
            if not self._credits.spend(key):
                raise RpcError.of(
                    TOO_MANY_REQUESTS,
                    explanation=f"rate limit exhausted ({self._credits.describe()})",
                )
        if (
            principal is not None
            and method.scope is not None
            and not principal.permissions.allows(method.scope)
        ):
            granted = " ".join(principal.permissions.entries()) or "nothing"
            raise RpcError.forbidden(
                f"{method_path.lstrip('/')} needs {method.scope}; the token may do {granted}"
            )
        call.client_id = account
        return method.handler(self.context, call, params)

    def _public_account(self, params: Mapping[str, Any], call: Call) -> str | None:
        """Who a public request is authenticated as, if anyone (for its credit pool)."""
        auth = self.context.auth
        if call.transport == HTTP:
            if self._credits is not None:
                return auth.client_of(call.authorization, call.connection_id)
            return None
        token = params.get("access_token")
        if token is not None:
            if not isinstance(token, str):
                raise RpcError.invalid_param("access_token", "must be a string")
            return auth.check_token(token, call.connection_id).client_id
        return call.websocket.client_id if call.websocket.access_token is not None else None

    def _principal(self, params: Mapping[str, Any], call: Call) -> Principal:
        """Who a private request is authenticated as (13009 if no one) and what it may do."""
        auth = self.context.auth
        if call.transport == HTTP:
            return auth.authorize(
                call.authorization,
                call.connection_id,
                verb=call.verb,
                target=call.target,
                body=call.body,
            )
        token = params.get("access_token")
        if token is not None:
            if not isinstance(token, str):
                raise RpcError.invalid_param("access_token", "must be a string")
            return auth.check_token(token, call.connection_id)
        if call.websocket.access_token is not None:
            return auth.check_token(call.websocket.access_token, call.connection_id)
        raise RpcError.unauthorized(
            "this connection is not authenticated: call public/auth on it first, "
            "or pass params.access_token"
        )

    def answer(
        self,
        method_path: str,
        params: Mapping[str, Any],
        call: Call,
        us_in: int,
        rpc_id: Any = NO_ID,
    ) -> tuple[int, bytes, RpcError | None]:
        """The HTTP status, the encoded envelope and the error (None on success) for one HTTP
        request.

        :param method_path: the path below ``/api/v2``, e.g. ``/public/test``.
        :param params: the decoded query parameters (a GET), or the JSON-RPC params (a POST).
        :param call: who sent it.
        :param us_in: when the request arrived, in microseconds since the epoch.
        :param rpc_id: a POSTed JSON-RPC request's ``id``, echoed in the answer.
        """
        try:
            result = self.call(method_path, params, call)
        except RpcError as error:
            return error.status, self.envelope.error(error, us_in, rpc_id), error
        except Exception as exc:
            bug = internal_error(exc)
            return bug.status, self.envelope.error(bug, us_in, rpc_id), bug
        return 200, self.envelope.success(result, us_in, rpc_id), None


def internal_error(exc: Exception) -> RpcError:
    """The answer to a bug in the simulator: 11094 with what went wrong."""
    return RpcError.of(
        INTERNAL_SERVER_ERROR,
        {"reason": f"simulator error: {type(exc).__name__}: {exc}"},
        status=500,
    )
