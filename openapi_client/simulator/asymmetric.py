"""Deribit's asymmetric API keys: an Ed25519 or RSA public key checks ``client_signature`` grants.

The user keeps the private key and registers only the public key (PEM). A grant signs the same
message as an HMAC one, ``timestamp + "\\n" + nonce + "\\n" + data`` (Latin-1 bytes, as Deribit's
example encodes it): Ed25519 as is (RFC 8032), RSA with PKCS#1 v1.5 and SHA-256; the signature
travels as base64url without ``=`` padding. Sources and confidence: ``docs/Simulator.md``,
"Fidelity".

The verification is the simulator's own, on the ``cryptography`` package (the ``[asymmetric]``
extra), imported only when an asymmetric key is registered: the rest of the simulator works
without it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["ASYMMETRIC_EXTRA", "MIN_RSA_BITS", "PublicKey", "signed_message"]

#: What to install for asymmetric keys.
ASYMMETRIC_EXTRA = "pip install 'openapi-client-deribit-session[asymmetric]'"
#: The smallest RSA key Deribit takes, in bits.
MIN_RSA_BITS = 2048

#: Unpadded base64url: the only signature encoding accepted.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def signed_message(timestamp: int, nonce: str, data: str) -> bytes | None:
    """The bytes an asymmetric grant signs; None when ``data`` or ``nonce`` is not Latin-1
    (no signature can match then)."""
    try:
        return f"{timestamp}\n{nonce}\n{data}".encode("latin-1")
    except UnicodeEncodeError:
        return None


def _decoded(signature: str) -> bytes | None:
    """The bytes of an unpadded base64url signature; None for any other text."""
    if not _BASE64URL.fullmatch(signature) or len(signature) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64url
        return None


class PublicKey:
    """A registered Ed25519 or RSA public key, loaded once.

    :param pem: the key as PEM (SubjectPublicKeyInfo, ``-----BEGIN PUBLIC KEY-----``).
    :param client_id: the key's client id, for error messages.
    :raises ValueError: when ``cryptography`` is missing, the text is not a public key (a private
        key included), the key is neither Ed25519 nor RSA, or RSA is under 2048 bits.
    """

    __slots__ = ("_key", "kind")

    def __init__(self, pem: str | bytes, client_id: str) -> None:
        try:
            from cryptography.exceptions import UnsupportedAlgorithm
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
        except ImportError:
            raise ValueError(
                f"ApiKey {client_id!r} has a public key: the simulator checks asymmetric "
                f"signatures with the 'cryptography' package, which is not installed: "
                f"{ASYMMETRIC_EXTRA}"
            ) from None
        raw = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
        if b"PRIVATE KEY" in raw:
            raise ValueError(
                f"ApiKey {client_id!r}: public_key holds a private key; register the public key "
                "(openssl pkey -in KEY.pem -pubout) and keep the private key with the client"
            )
        try:
            key = load_pem_public_key(raw)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError(
                f"ApiKey {client_id!r}: public_key is not a PEM public key "
                "(-----BEGIN PUBLIC KEY-----)"
            ) from None
        if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"ApiKey {client_id!r}: an RSA key of {key.key_size} bits; Deribit takes "
                f"{MIN_RSA_BITS} bits or more"
            )
        if not isinstance(key, (Ed25519PublicKey, RSAPublicKey)):
            kind = type(key).__name__.replace("PublicKey", "").lstrip("_")
            raise ValueError(
                f"ApiKey {client_id!r}: {kind} keys are not taken; Deribit takes Ed25519 "
                "(recommended) or RSA keys"
            )
        self._key: Ed25519PublicKey | RSAPublicKey = key
        self.kind = "ed25519" if isinstance(key, Ed25519PublicKey) else "rsa"

    def verify(self, message: bytes, signature: str) -> bool:
        """Whether ``signature`` (unpadded base64url) signs ``message`` with this key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.hashes import SHA256

        raw = _decoded(signature)
        if raw is None:
            return False
        try:
            if isinstance(self._key, Ed25519PublicKey):
                self._key.verify(raw, message)
            else:
                self._key.verify(raw, message, PKCS1v15(), SHA256())
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"<PublicKey {self.kind}>"
