"""What every API class shares: the client it calls through."""

from __future__ import annotations

from typing import Optional

from openapi_client.api_client import ApiClient

__all__ = ["BaseApi"]


class BaseApi:
    """An API class: thin methods over :meth:`ApiClient.call`.

    :param api_client: the client to call through; a new ``ApiClient()`` (with the default
        configuration) when omitted.
    """

    def __init__(self, api_client: Optional[ApiClient] = None) -> None:
        self.api_client = api_client if api_client is not None else ApiClient()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_client!r})"
