"""Credentials on a WebSocket: which the configuration holds, and how a connection uses them.

* ``Configuration.access_token`` or ``token_provider``: the token goes in the ``access_token``
  parameter of every private call (Deribit accepts it there); nothing to authenticate.
* ``client_id``/``client_secret``: the connection is authenticated with ``public/auth`` (the
  ``client_signature`` grant, or ``client_credentials`` when ``auth_method`` says so; the HTTP-only
  ``"signature"`` method uses ``client_signature`` here), asking for the ``session:NAME`` scope of
  :func:`~openapi_client.credentials.requested_scope`. Every new connection authenticates again
  (with the refresh token while it is good), and the token is refreshed on the open connection
  ahead of expiry. :class:`~openapi_client.credentials.TokenManager` does the bookkeeping, as it
  does over HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Callable

from openapi_client.configuration import Configuration
from openapi_client.credentials import TokenManager, uses_api_key
from openapi_client.endpoint import Endpoint
from openapi_client.exceptions import ApiValueError
from openapi_client.websocket.connection import Connection
from openapi_client.websocket.events import Authenticated, EventHub, TokenRefreshed, now

__all__ = ["SocketCredentials"]

#: Sends a request on a connection and returns the answer (raising on an error answer).
Send = Callable[[Connection, str, Mapping[str, Any]], dict[str, Any]]


class SocketCredentials:
    """The configured credentials, applied to the session's connections.

    :param configuration: read for the credentials (each time: a token set later is used).
    :param hub: receives :class:`Authenticated` and :class:`TokenRefreshed`.
    :param send: makes a request on a given connection.
    """

    def __init__(self, configuration: Configuration, hub: EventHub, send: Send) -> None:
        self._configuration = configuration
        self._hub = hub
        self._send = send
        self._lock = threading.RLock()
        self._connection: Connection | None = None
        #: The token last put on a connection, as (access token, expiry): announced once.
        self._adopted: tuple[str, float] | None = None
        self._manager: TokenManager | None = None
        if self.uses_key:
            self._manager = TokenManager(configuration, self._fetch)

    @property
    def uses_key(self) -> bool:
        """Whether connections authenticate with ``public/auth`` (an API key, no fixed token)."""
        configuration = self._configuration
        return (
            not configuration.access_token
            and configuration.token_provider is None
            and uses_api_key(configuration)
        )

    @property
    def available(self) -> bool:
        """Whether any credential is configured (private calls are possible)."""
        configuration = self._configuration
        return bool(configuration.access_token or configuration.token_provider) or self.uses_key

    def _fixed_token(self) -> str | None:
        configuration = self._configuration
        if configuration.access_token:
            return configuration.access_token
        provider = configuration.token_provider
        if provider is not None:
            token = provider()
            if not isinstance(token, str) or not token:
                raise ApiValueError("the token from token_provider must be a non-empty string")
            return token
        return None

    # -- connections ----------------------------------------------------------------------------

    def authenticate(self, connection: Connection) -> None:
        """Make ``connection`` able to make private calls (``public/auth`` with an API key)."""
        manager = self._manager
        if manager is None:
            connection.authorized = self.available
            return
        with self._lock:
            self._connection = connection
            held = manager.token
            if held is not None:
                # Valid or not, the new connection needs a public/auth of its own; the refresh
                # token is kept, so that grant is tried first.
                manager.invalidate(held.access_token)
            manager.access_token()
            self._adopt(manager, connection)

    def refresh_due(self) -> float | None:
        """When (``time.monotonic()``) the token should be refreshed; None: never."""
        manager = self._manager
        token = manager.token if manager is not None else None
        return None if token is None else token.refresh_at

    def refresh(self, connection: Connection) -> None:
        """Renew the token on ``connection`` if it is due (failures are logged and retried
        later by the token manager while the token is still valid)."""
        manager = self._manager
        if manager is None:
            return
        with self._lock:
            self._connection = connection
            manager.access_token()
            self._adopt(manager, connection)

    def for_private_call(
        self, connection: Connection, params: Mapping[str, Any], operation: str
    ) -> tuple[Mapping[str, Any], str | None]:
        """``(params, credential)`` for a private call on ``connection``: the parameters to
        send (with ``access_token`` when tokens go per call) and the credential used."""
        token = self._fixed_token()
        if token is not None:
            return {**params, "access_token": token}, token
        if self._manager is None:
            raise ApiValueError(
                f"{operation} is a private method and needs credentials: set "
                "Configuration.access_token, or Configuration.client_id and client_secret"
            )
        return params, connection.credential

    def reauthenticate(self, credential: str, connection: Connection | None) -> bool:
        """After 13009 for ``credential``: whether a fresh one is in place for another try."""
        configuration = self._configuration
        if configuration.access_token:
            return False
        if configuration.token_provider is not None:
            return True
        manager = self._manager
        if manager is None or connection is None or connection.lost is not None:
            return False
        with self._lock:
            if connection.credential == credential:
                manager.invalidate(credential)
                self._connection = connection
                manager.access_token()
                self._adopt(manager, connection)
        return True

    def logout_params(self) -> dict[str, Any] | None:
        """The parameters of ``private/logout``, or None without credentials. A fixed token is
        the user's to keep, so only tokens this session obtained are invalidated."""
        if not self.available:
            return None
        token = self._fixed_token()
        if token is not None:
            return {"access_token": token, "invalidate_token": False}
        return {"invalidate_token": True}

    # -- public/auth for the token manager ------------------------------------------------------

    def _adopt(self, manager: TokenManager, connection: Connection) -> None:
        """Authorize ``connection`` with the manager's token, announcing a new one with
        :class:`Authenticated` (the connection's first) or :class:`TokenRefreshed`."""
        token = manager.token
        if token is None:
            return
        key = (token.access_token, token.expires_at)
        if key == self._adopted and connection.credential == token.access_token:
            return  # not renewed (not due yet, or the renewal failed and the token was kept)
        self._adopted = key
        first = connection.credential is None
        connection.credential = token.access_token
        connection.authorized = True
        event = Authenticated if first else TokenRefreshed
        self._hub.emit(event(connection.number, token.scope, token.lifetime, now()))

    def _fetch(
        self, endpoint: Endpoint, make_args: Callable[[], Mapping[str, Any]]
    ) -> dict[str, Any]:
        """``public/auth`` on the connection being authenticated, for the token manager."""
        connection = self._connection
        assert connection is not None, "public/auth outside authenticate() or refresh()"
        return self._send(connection, endpoint.method, endpoint.json_params(make_args(), True))
