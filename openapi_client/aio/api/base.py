"""What every asyncio API class shares: the asyncio client it awaits, and the keywords it takes."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from openapi_client.core import CALL_OPTIONS
from openapi_client.exceptions import ApiTypeError

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.endpoint import Endpoint

__all__ = ["AsyncCaller", "BaseApi"]

#: The keywords an asyncio API method accepts: the synchronous ones but ``async_req``.
ASYNC_CALL_OPTIONS = CALL_OPTIONS - {"async_req"}


class AsyncCaller(Protocol):
    """What an asyncio API class calls through: an asyncio client of Deribit's API (the asyncio
    WebSocket session; an asyncio HTTP transport would be another).

    ``call`` makes one call of ``endpoint`` with ``args`` (the method's arguments by name, ``None``
    for one not given) and returns what the synchronous clients' ``call`` returns for the same
    ``options`` and ``http_info``: the decoded envelope, ``(data, status, headers)``, or the
    undecoded answer with ``_preload_content=False``. It checks and encodes the arguments (with
    :meth:`Endpoint.json_params <openapi_client.endpoint.Endpoint.json_params>` or
    :meth:`~openapi_client.endpoint.Endpoint.query`) and the options' values; the API class has
    already refused unknown option names and ``async_req``. Its arguments are positional, so an
    implementation may name them as it likes.
    """

    async def call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool,
        /,
    ) -> Any: ...


class BaseApi:
    """An asyncio API class: thin coroutine methods over ``await api_client.call(...)``.

    :param api_client: the asyncio client to call through (an :class:`AsyncCaller`). There is no
        default: unlike a synchronous API class, this one does not create a client of its own.
    :raises ApiTypeError: ``api_client`` is ``None``, or its ``call`` is not a coroutine function
        (a synchronous client, whose API classes are those of :mod:`openapi_client.api`).
    """

    def __init__(self, api_client: AsyncCaller) -> None:
        if not inspect.iscoroutinefunction(getattr(api_client, "call", None)):
            raise ApiTypeError(_not_a_caller(type(self).__name__, api_client))
        self.api_client = api_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_client!r})"

    def _call(
        self,
        endpoint: Endpoint,
        args: Mapping[str, Any],
        options: Mapping[str, Any],
        http_info: bool,
    ) -> Awaitable[Any]:
        """The client's call, for the method to await, the option names checked first (an
        unknown one is raised when the method is awaited, as any error of the call). Not a
        coroutine of its own: one layer less for every resumption of every call."""
        for name in options:
            if name not in ASYNC_CALL_OPTIONS:
                return _raise(ApiTypeError(_unexpected_option(name, endpoint.operation)))
        return self.api_client.call(endpoint, args, options, http_info)


async def _raise(error: Exception) -> Any:
    raise error


def _not_a_caller(api: str, given: object) -> str:
    if given is None:
        return (
            f"openapi_client.aio.{api} needs the asyncio client to call through, e.g. "
            f"openapi_client.aio.{api}(client) inside `async with "
            "openapi_client.aio.WebSocketApiClient(configuration) as client:`; it has no "
            "default client"
        )
    return (
        f"openapi_client.aio.{api} needs an asyncio client, whose call() is a coroutine "
        f"function; {type(given).__name__}.call is not. With a synchronous client "
        f"(ApiClient, WebSocketApiClient) use openapi_client.{api}"
    )


def _unexpected_option(name: str, operation: str) -> str:
    if name == "async_req":
        return (
            f"{operation} does not take async_req in openapi_client.aio: every call is already "
            "a coroutine. To run calls concurrently, use asyncio.create_task(...) or "
            "asyncio.gather(...)"
        )
    return f"Got an unexpected keyword argument {name!r} to method {operation}"
