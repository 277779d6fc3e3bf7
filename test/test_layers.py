"""Imports only point downwards: the WebSocket session and the asyncio clients never import the HTTP
transport, and the wire modules both share (``openapi_client.net``) import neither transport.

Read from the source (every ``import`` statement, those inside functions included), so a lazy
import counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "openapi_client"

HTTP_TRANSPORT = ("openapi_client.rest", "openapi_client.http", "openapi_client.api_client")
WEBSOCKET_SESSION = ("openapi_client.websocket",)

#: Each package, and what none of its modules may import.
FORBIDDEN = {
    "websocket": HTTP_TRANSPORT,
    "aio": HTTP_TRANSPORT,
    "net": HTTP_TRANSPORT + WEBSOCKET_SESSION + ("openapi_client.aio",),
}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (``from openapi_client import rest`` as
    ``openapi_client.rest``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    modules = sorted((PACKAGE / package).rglob("*.py"))
    assert modules
    wrong = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in modules
        for name in imported(path)
        if name.startswith(FORBIDDEN[package])
    }
    assert not wrong, sorted(wrong)
