"""The TLS context of a ``wss://`` connection: the library's one (see
:mod:`openapi_client.net.tls`), with the session's own warning when verification is off."""

from __future__ import annotations

import ssl

from openapi_client.configuration import Configuration
from openapi_client.net.tls import client_context, server_hostname, warn_unverified

__all__ = ["server_hostname", "ssl_context"]


def ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """The client context for the session's connections (and an https proxy's).

    :raises ApiValueError: a certificate, key or CA file cannot be loaded.
    """
    context = client_context(configuration)
    if not configuration.verify_ssl:
        warn_unverified("the WebSocket session and its token", stacklevel=4)
    return context
