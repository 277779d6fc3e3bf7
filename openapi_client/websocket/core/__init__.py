"""The session core: the decisions of a Deribit WebSocket session, without I/O, one concern per
module.

* :mod:`.outputs`: the session's :class:`State`, what the core asks a driver to do, a
  :class:`Call`, :class:`CoreSettings`, and the :class:`Outbox` every part writes to;
* :mod:`.links`: what a connection is to the core, and closing one;
* :mod:`.profile`: what every new connection gets (heartbeat, cancel-on-disconnect,
  subscriptions), what successful calls change of it, and the liveness limit;
* :mod:`.routing`: JSON-RPC ids, pending requests and queued calls, where each answer goes;
* :mod:`.tokens`: the session's token (``public/auth``, renewal, re-authentication after 13009);
* :mod:`.restore`: the restore sequence on each new connection;
* :mod:`.backoff`: the attempts to establish the session, reconnect delays, giving up;
* :mod:`.watchdog`: the watchdog's deadline;
* :mod:`.session`: :class:`SessionCore`, which composes them and holds how a session ends.

Drivers import from :mod:`openapi_client.websocket.session_core`, which names all of it.
"""

from __future__ import annotations
