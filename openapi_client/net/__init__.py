"""What both transports share about the wire, owned by neither.

* :mod:`~openapi_client.net.origin`: where an API is (a checked origin, loopback or not, its
  ``host:port`` for messages);
* :mod:`~openapi_client.net.tls`: the one function that builds every TLS context the library
  uses;
* :mod:`~openapi_client.net.errors`: socket, TLS, ``http.client`` and urllib3 failures as the
  library's exceptions, by type, in one table.

Nothing here imports the HTTP transport (:mod:`openapi_client.rest`, :mod:`openapi_client.http`)
or the WebSocket session (:mod:`openapi_client.websocket`); both import from here.
"""

from __future__ import annotations
