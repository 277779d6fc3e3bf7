"""The HTTP transport's insides; its public face is :mod:`openapi_client.rest`.

One concern per module:

* :mod:`~openapi_client.http.timeouts`: a request's connect and read timeouts, and the errors of
  a deadline that ran out;
* :mod:`~openapi_client.http.message`: the request head the client writes, and the limits and
  checks every answer is held to, on either path;
* :mod:`~openapi_client.http.body`: what a call gets back (``RESTResponse``,
  ``StreamedResponse``) over a body that either path's reader implements;
* :mod:`~openapi_client.http.slots`: how both paths count their connections under
  ``max_connections``, safe against an interrupt at any moment;
* :mod:`~openapi_client.http.direct` and :mod:`~openapi_client.http.wire`: the direct path (the
  client's own HTTP/1.1 connections to each origin, and one exchange on one of them);
* :mod:`~openapi_client.http.watchdog`, :mod:`~openapi_client.http.pools` and
  :mod:`~openapi_client.http.urllib3_path`: urllib3's path (the deadline of each exchange, the
  pools and connections made to keep the client's promises, and the answers read from them).

Nothing here is public API: these modules change without notice.
"""

from __future__ import annotations
