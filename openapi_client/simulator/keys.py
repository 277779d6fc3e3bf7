"""API keys and what their tokens may do: permissions per resource, a key's maximum scope.

Deribit gives each API key a ``max_scope`` such as ``account:read_write trade:read wallet:none``
(resources ``account``, ``block_trade``, ``trade`` and ``wallet``, each ``none``, ``read`` or
``read_write``). A grant may ask for less (``scope=account:read``) and never gets more; each
private method documents the permission it needs and answers 13021 ``forbidden`` to a token
that lacks it. This module is the simulator's own reading of those rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .asymmetric import PublicKey

__all__ = [
    "FULL_SCOPE",
    "LEVELS",
    "RESOURCES",
    "ApiKey",
    "Permissions",
    "ScopeError",
]

#: The resources a key's scope covers, and the levels of access to each, weakest first.
RESOURCES = ("account", "block_trade", "trade", "wallet")
LEVELS = ("none", "read", "read_write")
#: A key allowed everything: the simulator's keys unless told otherwise.
FULL_SCOPE = " ".join(f"{resource}:read_write" for resource in RESOURCES)


class ScopeError(ValueError):
    """A scope entry that names a known resource with an unknown level (``account:write``)."""


def _entry(text: str) -> tuple[str, int] | None:
    """``(resource, level)`` for a permission entry, None for any other scope entry.

    :raises ScopeError: for a known resource with an unknown level.
    """
    resource, sep, level = text.partition(":")
    if not sep or resource not in RESOURCES:
        return None
    if level not in LEVELS:
        raise ScopeError(f"{text!r}: the level of {resource} must be one of {', '.join(LEVELS)}")
    return resource, LEVELS.index(level)


class Permissions:
    """What a token may do: a level (index into :data:`LEVELS`) per resource. Immutable."""

    __slots__ = ("_levels",)

    def __init__(self, levels: Mapping[str, int]) -> None:
        self._levels = tuple(levels.get(resource, 0) for resource in RESOURCES)

    @classmethod
    def parse(cls, scope: str) -> Permissions:
        """The permissions a scope string lists; resources it does not name get ``none``.

        :raises ScopeError: for a permission entry with an unknown level.
        """
        return cls(dict(entry for entry in map(_entry, scope.split()) if entry is not None))

    def narrowed(self, scope: str) -> Permissions:
        """These permissions, lowered to what ``scope`` asks for where it names a resource
        (never raised: a grant never gets more than its key allows).

        :raises ScopeError: for a permission entry with an unknown level.
        """
        asked = dict(entry for entry in map(_entry, scope.split()) if entry is not None)
        return Permissions(
            {
                resource: min(level, asked.get(resource, level))
                for resource, level in zip(RESOURCES, self._levels)
            }
        )

    def allows(self, requirement: str) -> bool:
        """Whether these permissions meet ``requirement``, e.g. ``"account:read"``."""
        needed = _entry(requirement)
        assert needed is not None, requirement
        resource, level = needed
        return self._levels[RESOURCES.index(resource)] >= level

    def entries(self) -> list[str]:
        """The scope entries, ``none`` left out: ``["account:read_write", "trade:read"]``."""
        return [
            f"{resource}:{LEVELS[level]}"
            for resource, level in zip(RESOURCES, self._levels)
            if level
        ]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Permissions) and other._levels == self._levels

    def __hash__(self) -> int:
        return hash(self._levels)

    def __repr__(self) -> str:
        return f"Permissions({' '.join(self.entries()) or 'none'!r})"


FULL = Permissions.parse(FULL_SCOPE)


@dataclass(frozen=True)
class ApiKey:
    """One API key the simulator accepts.

    :param client_id: the key's client id.
    :param client_secret: its secret, for ``client_credentials``, HMAC ``client_signature``,
        ``deri-hmac-sha256`` and ``Basic`` authorization.
    :param public_key: instead of a secret, the PEM text of an Ed25519 or RSA (2048 bits or
        more) public key: such a key authenticates only with ``client_signature`` signed by its
        private key (needs the ``cryptography`` package, the ``[asymmetric]`` extra).
    :param max_scope: the most its tokens may do, as Deribit writes it
        (``"account:read trade:read_write"``); resources left out get ``none``.
    :param name: the key's name, reported in a grant's ``scope`` as ``name:<name>``; none when
        empty.
    :param enabled_features: what ``public/auth`` reports in ``enabled_features``.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    public_key: str | bytes | None = field(default=None, repr=False)
    max_scope: str = FULL_SCOPE
    name: str = ""
    enabled_features: tuple[str, ...] = ()
    #: The loaded public key of an asymmetric key (None for an HMAC key).
    verifier: PublicKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id.strip():
            raise ValueError(f"an ApiKey needs a non-empty client_id, got {self.client_id!r}")
        if (self.client_secret is None) == (self.public_key is None):
            raise ValueError(
                f"ApiKey {self.client_id!r} needs exactly one of client_secret (an HMAC key) "
                "and public_key (an asymmetric key)"
            )
        if self.client_secret is not None and (
            not isinstance(self.client_secret, str) or not self.client_secret
        ):
            raise ValueError(f"ApiKey {self.client_id!r}: client_secret must be a non-empty str")
        if self.public_key is not None:
            if not isinstance(self.public_key, (str, bytes)):
                raise ValueError(f"ApiKey {self.client_id!r}: public_key must be PEM text or bytes")
            object.__setattr__(self, "verifier", PublicKey(self.public_key, self.client_id))
        if not isinstance(self.max_scope, str):
            raise ValueError(f"ApiKey {self.client_id!r}: max_scope must be a string")
        try:
            Permissions.parse(self.max_scope)
        except ScopeError as error:
            raise ValueError(f"ApiKey {self.client_id!r}: max_scope {error}") from None
        if not isinstance(self.name, str) or any(c.isspace() for c in self.name):
            raise ValueError(f"ApiKey {self.client_id!r}: name must be a string without spaces")
        features: Any = self.enabled_features
        if isinstance(features, str) or not all(isinstance(f, str) for f in features):
            raise ValueError(f"ApiKey {self.client_id!r}: enabled_features must be strings")
        object.__setattr__(self, "enabled_features", tuple(features))

    @property
    def permissions(self) -> Permissions:
        """The key's maximum permissions."""
        return Permissions.parse(self.max_scope)


def keys_from(
    credentials: Mapping[str, str] | None, keys: Iterable[ApiKey], default: Mapping[str, str]
) -> dict[str, ApiKey]:
    """The simulator's keys by client id: ``keys`` and the ``credentials`` pairs (full scope);
    ``default`` when neither is given.

    :raises ValueError: for a client id given twice, or an entry that is not an :class:`ApiKey`.
    """
    listed = list(keys)
    if credentials is None and not listed:
        credentials = default
    if credentials is not None and not isinstance(credentials, Mapping):
        raise ValueError("credentials must map client ids to client secrets")
    for client_id, secret in (credentials or {}).items():
        if not (isinstance(client_id, str) and isinstance(secret, str) and client_id and secret):
            raise ValueError("credentials must map non-empty client ids to non-empty secrets")
        listed.append(ApiKey(client_id, client_secret=secret))
    by_id: dict[str, ApiKey] = {}
    for key in listed:
        if not isinstance(key, ApiKey):
            raise ValueError(f"keys must be ApiKey objects, got {type(key).__name__}")
        if key.client_id in by_id:
            raise ValueError(f"client id {key.client_id!r} is given twice")
        by_id[key.client_id] = key
    return by_id
