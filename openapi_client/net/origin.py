"""Where an API is: a checked origin, whether it is this machine, and how messages name it."""

from __future__ import annotations

from urllib.parse import quote

from openapi_client.configuration import check_host

__all__ = ["Origin", "is_loopback"]


class Origin:
    """A parsed API root (``scheme://host:port/base``), computed once per host string."""

    __slots__ = (
        "base_path",
        "host_header",
        "hostname",
        "insecure",
        "is_loopback",
        "origin",
        "port",
        "scheme",
    )

    def __init__(self, url: str) -> None:
        parts = check_host(url.rstrip("/") if isinstance(url, str) else url)
        self.scheme = parts.scheme
        self.hostname: str = parts.hostname or ""
        default_port = 443 if parts.scheme == "https" else 80
        self.port: int = parts.port or default_port
        # Percent-encode what is not ASCII, keeping what is already encoded.
        self.base_path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        bracketed = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        self.host_header = bracketed if self.port == default_port else f"{bracketed}:{self.port}"
        self.is_loopback = is_loopback(self.hostname)
        #: Plain http to a host off this machine: credentials would cross the network readable.
        self.insecure = self.scheme == "http" and not self.is_loopback

    @property
    def display(self) -> str:
        """``host:port`` for messages (``[::1]:port`` for an IPv6 address)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is this machine: ``localhost``, ``*.localhost``, ``127.0.0.0/8`` or
    ``::1`` (no name is looked up)."""
    name = hostname.lower().strip("[]")
    if name in ("localhost", "::1") or name.endswith(".localhost"):
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and len(p) <= 3 for p in parts)
