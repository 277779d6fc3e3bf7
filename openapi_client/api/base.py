"""What every API class shares: the client it calls through."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from openapi_client.exceptions import ApiTypeError

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.core import Caller

__all__ = ["BaseApi"]


class BaseApi:
    """An API class: thin methods over the ``call`` of its client (a
    :class:`~openapi_client.core.Caller`).

    :param api_client: the client to call through: an :class:`~openapi_client.ApiClient` (HTTP)
        or a :class:`~openapi_client.websocket.WebSocketApiClient`; a new ``ApiClient()`` (with
        the default configuration) when omitted. An asyncio client is refused with
        ``ApiTypeError``: its API classes are those of :mod:`openapi_client.aio`.
    """

    def __init__(self, api_client: Caller | None = None) -> None:
        if api_client is None:
            from openapi_client.api_client import ApiClient

            api_client = ApiClient()
        elif inspect.iscoroutinefunction(getattr(api_client, "call", None)):
            name = type(self).__name__
            raise ApiTypeError(
                f"{type(api_client).__name__} is an asyncio client, and {name} calls "
                f"synchronously: use openapi_client.aio.{name} with it"
            )
        self.api_client = api_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_client!r})"
