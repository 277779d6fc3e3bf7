"""Deribit's HMAC-SHA256 signatures, and the message every signature of the client covers.

Both formulas come from Deribit's API documentation:

* the ``client_signature`` grant of ``public/auth`` signs
  ``timestamp + "\\n" + nonce + "\\n" + data`` (:func:`string_to_sign`), with the API key's
  secret, or with an asymmetric key's private key (:mod:`openapi_client.asymmetric`);
* the per-request ``deri-hmac-sha256`` scheme signs the same with ``data`` replaced by
  ``METHOD + "\\n" + path_with_query + "\\n" + body + "\\n"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

__all__ = [
    "SIGNATURE_WINDOW_SECONDS",
    "new_nonce",
    "now_ms",
    "request_data",
    "sign",
    "signature_header",
    "string_to_sign",
]

#: How far a signed timestamp may be from the server's clock, in seconds.
SIGNATURE_WINDOW_SECONDS = 60

SCHEME = "deri-hmac-sha256"


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as Deribit expects in ``timestamp`` and ``ts``."""
    return time.time_ns() // 1_000_000


def new_nonce() -> str:
    """A fresh random nonce (16 URL-safe characters, 96 bits); never repeats in practice."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")


def string_to_sign(timestamp: int, nonce: str, data: str) -> bytes:
    """The bytes a ``client_signature`` grant signs: ``timestamp\\nnonce\\ndata`` in UTF-8
    (the timestamp in decimal milliseconds, no newline at the end)."""
    return f"{timestamp}\n{nonce}\n{data}".encode()


def sign(secret: str, timestamp: int, nonce: str, data: str) -> str:
    """Hex HMAC-SHA256 of :func:`string_to_sign` keyed by ``secret``."""
    message = string_to_sign(timestamp, nonce, data)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_data(method: str, path_with_query: str, body: str = "") -> str:
    """The ``RequestData`` string of the per-request signature scheme."""
    return f"{method.upper()}\n{path_with_query}\n{body}\n"


def signature_header(
    client_id: str, secret: str, method: str, path_with_query: str, body: str = ""
) -> str:
    """A complete ``Authorization`` value for the ``deri-hmac-sha256`` scheme."""
    timestamp = now_ms()
    nonce = new_nonce()
    signature = sign(secret, timestamp, nonce, request_data(method, path_with_query, body))
    return f"{SCHEME} id={client_id},ts={timestamp},sig={signature},nonce={nonce}"
