"""``python -m openapi_client``: the ``deribit-session`` command line."""
from __future__ import annotations

from openapi_client.cli import console_main

if __name__ == "__main__":
    console_main()
