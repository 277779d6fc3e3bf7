"""HTTP header fields: one case-insensitive mapping for responses and for requests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["HTTPHeaders", "check_header"]

Pairs = Iterable[tuple[str, str]]


class HTTPHeaders(Mapping[str, str]):
    """Header fields by case-insensitive name, in arrival order.

    ``headers["Content-Type"]`` and ``headers.get("content-type")`` find the same field; a name
    that came more than once reads as its values joined by ``", "`` (``getlist`` gives them
    apart). Built from a mapping or from ``(name, value)`` pairs.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str] | Pairs | None = None) -> None:
        # lower-case name -> [name as first sent, value, value...]
        self._fields: dict[str, list[str]] = {}
        if fields is None:
            return
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Add a value for ``name``, keeping any earlier ones."""
        entry = self._fields.get(name.lower())
        if entry is None:
            self._fields[name.lower()] = [name, value]
        else:
            entry.append(value)

    def __setitem__(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` alone, whatever the case it was set in before."""
        self._fields[name.lower()] = [name, value]

    def __getitem__(self, name: str) -> str:
        entry = self._fields[name.lower()]
        return entry[1] if len(entry) == 2 else ", ".join(entry[1:])

    def get(self, name: str, default: Any = None) -> Any:
        entry = self._fields.get(name.lower()) if isinstance(name, str) else None
        if entry is None:
            return default
        return entry[1] if len(entry) == 2 else ", ".join(entry[1:])

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``, in arrival order."""
        entry = self._fields.get(name.lower())
        return list(entry[1:]) if entry else []

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (entry[0] for entry in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def pairs(self) -> list[tuple[str, str]]:
        """Every field as ``(name, value)``, repeated names once per value."""
        return [(entry[0], value) for entry in self._fields.values() for value in entry[1:]]

    def copy(self) -> HTTPHeaders:
        return HTTPHeaders(self.pairs())

    def __repr__(self) -> str:
        return f"HTTPHeaders({dict(self.items())!r})"


_FORBIDDEN_IN_VALUE = frozenset("\r\n\x00")


def check_header(name: Any, value: Any, setting: str) -> str | None:
    """Why ``name: value`` cannot be sent as an HTTP header (None when it can).

    ``setting`` names where the header came from, for the message; the value itself is never
    quoted, since it may be a credential.
    """
    if not isinstance(name, str) or not name:
        return f"{setting}: a header name must be a non-empty string"
    if not name.isascii() or any(c in name for c in ' \t:()<>@,;"/[]?={}\\') or not all(
        32 < ord(c) < 127 for c in name
    ):
        return f"{setting}: {name!r} is not a valid header name"
    if not isinstance(value, str):
        return f"{setting}: the value of {name} must be a string, got {type(value).__name__}"
    if any(c in _FORBIDDEN_IN_VALUE for c in value):
        return (
            f"{setting}: the value of {name} contains a line break or NUL, which would end the "
            "header early (header injection)"
        )
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        return f"{setting}: the value of {name} contains a control character"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"{setting}: the value of {name} has characters HTTP headers cannot carry"
    return None
