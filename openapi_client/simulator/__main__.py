"""``python -m openapi_client.simulator``: serve the Deribit simulator until Ctrl-C or SIGTERM.

Prints two lines, the HTTP API root to use as ``Configuration.host`` and the WebSocket URL, and
never prints a credential.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .core import DEFAULT_CREDENTIALS, DEFAULT_TOKENS, DeribitSimulator, loopback_family


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m openapi_client.simulator",
        description="Serve a local stand-in for Deribit's session-management API over HTTP and "
        "WebSocket. It listens on loopback only and prints two lines: the HTTP URL to use as "
        "Configuration.host, then the WebSocket URL.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port; 0 picks a free one (default 8080)"
    )
    parser.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="a static access token to accept; repeat for more (default: sim-token)",
    )
    parser.add_argument("--client-id", help="client id for public/auth (default: sim-client)")
    parser.add_argument(
        "--client-secret", help="client secret for --client-id (default: sim-secret)"
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="lifetime of every issued access token (default: Deribit's, 900 for a session's "
        "token, 31536000 for a connection-scoped one on a WebSocket)",
    )
    parser.add_argument(
        "--rate-limit",
        action="store_true",
        help="enforce Deribit's credit model: 100 requests at once, then 20 a second (10028)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=32,
        help="simultaneous connections served; the next gets HTTP 429 (default 32)",
    )
    parser.add_argument(
        "--legacy-http",
        action="store_true",
        help="answer set_heartbeat, disable_heartbeat and cancel-on-disconnect with "
        "scope=connection over HTTP, as the published API description says (default: error "
        "10030 must_be_websocket_request, as Deribit answers today)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="real seconds per API second for heartbeats and idle timers, e.g. 0.01 runs a 10 s "
        "heartbeat every 0.1 s (default 1)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator from the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        loopback_family(args.host)
    except ValueError as error:
        parser.error(str(error))
    if (args.client_id is None) != (args.client_secret is None):
        parser.error("give --client-id and --client-secret together")
    credentials = (
        {args.client_id: args.client_secret} if args.client_id is not None else DEFAULT_CREDENTIALS
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        simulator = DeribitSimulator(
            host=args.host,
            port=args.port,
            tokens=args.token or DEFAULT_TOKENS,
            credentials=credentials,
            token_ttl=args.token_ttl,
            rate_limit=args.rate_limit,
            max_connections=args.max_connections,
            legacy_http=args.legacy_http,
            time_scale=args.time_scale,
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    try:
        simulator.start()
    except OSError as error:
        print(f"cannot listen on {args.host} port {args.port}: {error.strerror}", file=sys.stderr)
        return 1
    try:
        print(simulator.url, simulator.ws_url, sep="\n", flush=True)
        stop.wait()  # until SIGINT or SIGTERM runs request_stop
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
