"""Deribit's asymmetric API keys: load an Ed25519 or RSA private key and sign a grant with it.

With an asymmetric key the user keeps the private key and registers only the public key with
Deribit, which then accepts one grant for it: ``client_signature``, whose ``signature`` is made
with the private key over :func:`openapi_client.signing.string_to_sign`:

* Ed25519 (Deribit's recommendation): pure Ed25519 (RFC 8032) over the message;
* RSA, 2048 bits or more: RSASSA-PKCS1-v1_5 with SHA-256 over the message;

and the signature travels as base64url (RFC 4648, section 5) without ``=`` padding. The sources
and their confidence are in ``docs/Authentication.md``.

All cryptography is the ``cryptography`` library's, installed with the ``[asymmetric]`` extra;
importing this module without it raises
:class:`~openapi_client.exceptions.ApiMissingDependencyError` naming the extra. A loaded key
lives in memory only: this module never writes it anywhere, never keeps the PEM text or the
password, and no ``repr``, message or exception it makes shows them.
"""

from __future__ import annotations

import base64
import re
from typing import Any, NoReturn, Union

from openapi_client.exceptions import ApiMissingDependencyError, ApiTypeError, ApiValueError
from openapi_client.redaction import register_secret

EXTRA = "openapi-client-deribit-session[asymmetric]"

try:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
except ImportError:
    raise ApiMissingDependencyError(
        "asymmetric API keys need the 'cryptography' package: install the "
        f"asymmetric extra, pip install '{EXTRA}'"
    ) from None

__all__ = ["EXTRA", "MAX_PEM_BYTES", "MIN_RSA_BITS", "PrivateKey", "load_private_key"]

#: Deribit's smallest RSA key ("2048-bit minimum").
MIN_RSA_BITS = 2048

#: A PEM private key is a few kilobytes at most (RSA 16384 is about 13 kB): larger is refused.
MAX_PEM_BYTES = 64 * 1024

_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")

_GENERATE = "generate one with: openssl genpkey -algorithm ed25519 -out private.pem"

Password = Union[str, bytes, None]


class PrivateKey:
    """An Ed25519 or RSA private key, loaded and checked, that signs ``client_signature`` grants.

    Its ``repr`` names only the kind of key; it cannot be pickled (so it is never written to disk
    by accident) and copying returns the same object.
    """

    __slots__ = ("_key", "kind")

    def __init__(self, key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> None:
        self._key = key
        #: ``"Ed25519"`` or ``"RSA-<bits>"``: safe to show.
        self.kind = (
            "Ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else f"RSA-{key.key_size}"
        )

    def sign(self, message: bytes) -> str:
        """The signature of ``message`` as Deribit takes it: base64url without padding."""
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raw = key.sign(message)
        else:
            raw = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        signature = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        register_secret(signature)  # redacted wherever the library would show it
        return signature

    def public_key_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo): what Deribit's API key settings and
        ``private/create_api_key`` (``public_key``) take. Not secret."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def __repr__(self) -> str:
        return f"PrivateKey({self.kind})"

    def __copy__(self) -> PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PrivateKey:
        return self

    def __reduce__(self) -> NoReturn:
        raise ApiTypeError(
            "a private key is not pickled, so that it is never written anywhere by accident: "
            "load it again from its PEM in the other process"
        )


def load_private_key(
    pem: str | bytes, password: Password = None, setting: str = "private_key"
) -> PrivateKey:
    """``pem`` (an Ed25519 or RSA private key in PEM, optionally encrypted with ``password``)
    loaded and checked; ``ApiTypeError``/``ApiValueError`` naming ``setting`` says what is wrong.

    Refused: text that is not a PEM private key, a public key or certificate given instead, an
    encrypted key without its password (or with a wrong one), a password for a key that is not
    encrypted, key types Deribit does not take, and RSA keys under :data:`MIN_RSA_BITS` bits.
    Neither the PEM nor the password appears in any message, nor in a chained exception.
    """
    data = _pem_bytes(pem, setting)
    secret = _password_bytes(password, setting)
    label_match = _PEM_LABEL.search(data)
    if label_match is None:
        _refuse(f"{setting} is not a PEM private key (text starting -----BEGIN PRIVATE KEY-----)")
    label = label_match.group(1).decode("ascii")
    if "PUBLIC KEY" in label:
        _refuse(
            f"{setting} is a public key: give the private key here (the public key is what you "
            "register with Deribit)"
        )
    if label == "OPENSSH PRIVATE KEY":
        _refuse(f"{setting} is an OpenSSH private key; Deribit's keys are PEM (PKCS#8): "
                f"{_GENERATE}")
    if not label.endswith("PRIVATE KEY"):
        _refuse(f"{setting} holds a PEM {label.lower()}, not a private key")
    encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and secret is None:
        _refuse(
            f"{setting} is encrypted: give its password as private_key_password "
            "(or DERIBIT_PRIVATE_KEY_PASSWORD)"
        )
    if not encrypted and secret is not None:
        _refuse(f"{setting} is not encrypted, yet a private_key_password was given: drop it")
    try:
        key: Any = serialization.load_pem_private_key(data, secret)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's own message may quote the input: say what it means instead, raising
        # outside this handler so that nothing is chained.
        key = None
    if key is None:
        _refuse(
            f"{setting} could not be decrypted: wrong private_key_password, or a damaged key"
            if encrypted
            else f"{setting} is not a readable PEM private key"
        )
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            _refuse(
                f"{setting} is a {key.key_size}-bit RSA key; Deribit requires at least "
                f"{MIN_RSA_BITS} bits (or use Ed25519, which Deribit recommends)"
            )
        return PrivateKey(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return PrivateKey(key)
    _refuse(
        f"{setting} is {_kind_of(key)} key; Deribit takes Ed25519 (recommended) or RSA of at "
        f"least {MIN_RSA_BITS} bits"
    )


def _refuse(message: str) -> NoReturn:
    raise ApiValueError(message)


def _pem_bytes(pem: Any, setting: str) -> bytes:
    if isinstance(pem, str):
        if not pem.isascii():
            _refuse(f"{setting} is not PEM text: PEM is plain ASCII")
        data = pem.encode("ascii")
    elif isinstance(pem, (bytes, bytearray, memoryview)):
        data = bytes(pem)
    else:
        raise ApiTypeError(
            f"{setting} must be PEM text (str or bytes), got {type(pem).__name__}"
        )
    if len(data) > MAX_PEM_BYTES:
        _refuse(f"{setting} is {len(data)} bytes: too large to be a private key")
    return data


def _password_bytes(password: Any, setting: str) -> bytes | None:
    if password is None or password == "" or password == b"":
        return None
    if isinstance(password, str):
        register_secret(password)
        try:
            return password.encode("utf-8")
        except UnicodeEncodeError:
            _refuse(f"the password of {setting} is not valid text")
    if isinstance(password, (bytes, bytearray)):
        return bytes(password)
    raise ApiTypeError(
        f"the password of {setting} must be a string or bytes, got {type(password).__name__}"
    )


def _kind_of(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, x448, x25519

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an elliptic-curve ({key.curve.name})"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448"
    if isinstance(key, (x25519.X25519PrivateKey, x448.X448PrivateKey)):
        return "a key-agreement (X25519/X448)"
    return f"a {type(key).__name__}"
