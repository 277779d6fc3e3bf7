"""The ``deribit-session`` command line (also ``python -m openapi_client``).

Prints the JSON answer on stdout. On failure prints one line on stderr and exits non-zero:
1 when the request failed (Deribit's error, or the network), 2 when the command was wrong.
Credentials come from the environment (``DERIBIT_ACCESS_TOKEN``, or ``DERIBIT_CLIENT_ID`` and
``DERIBIT_CLIENT_SECRET``); ``--simulator`` needs none.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO

from openapi_client._version import __version__
from openapi_client.configuration import Configuration
from openapi_client.exceptions import ApiException, OpenApiException

__all__ = ["main"]

PROG = "deribit-session"

EXIT_FAILED = 1
EXIT_USAGE = 2

#: command -> (API method name, help, takes --scope)
COMMANDS: Dict[str, Any] = {
    "set-heartbeat": ("public_set_heartbeat_get", "ask for heartbeats every INTERVAL s", False),
    "disable-heartbeat": ("public_disable_heartbeat_get", "stop heartbeats", False),
    "enable-cancel-on-disconnect": (
        "private_enable_cancel_on_disconnect_get",
        "turn cancel-on-disconnect on",
        True,
    ),
    "disable-cancel-on-disconnect": (
        "private_disable_cancel_on_disconnect_get",
        "turn cancel-on-disconnect off",
        True,
    ),
    "get-cancel-on-disconnect": (
        "private_get_cancel_on_disconnect_get",
        "read the cancel-on-disconnect setting",
        True,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage Deribit session settings: heartbeats and cancel-on-disconnect.",
        epilog=(
            "Credentials: DERIBIT_ACCESS_TOKEN, or DERIBIT_CLIENT_ID and DERIBIT_CLIENT_SECRET "
            "(DERIBIT_AUTH_METHOD picks client_signature, client_credentials or signature). "
            "Exit status: 0 ok, 1 the request failed, 2 bad usage."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--host", help="API root URL (default: production or $DERIBIT_HOST)")
    where.add_argument("--testnet", action="store_true", help="use test.deribit.com")
    where.add_argument(
        "--simulator",
        action="store_true",
        help="start the embedded Deribit simulator and run against it (offline, no credentials)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="request timeout (default: 5 s to connect, 10 s to read)",
    )
    parser.add_argument(
        "--retries", type=int, metavar="N", help="retries on transient errors (default 3)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, summary, scoped) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        if name == "set-heartbeat":
            command.add_argument("interval", type=float, metavar="INTERVAL", help="seconds, >= 10")
        if scoped:
            command.add_argument(
                "--scope",
                choices=("connection", "account"),
                help="connection (Deribit's default) or account",
            )
    return parser


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[Configuration]:
    overrides: Dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.testnet:
        overrides["testnet"] = True
        overrides["host"] = None
    if args.timeout is not None:
        overrides["request_timeout"] = args.timeout
    if args.retries is not None:
        overrides["retries"] = args.retries
    if not args.simulator:
        yield Configuration.from_env(**overrides)
        return
    from openapi_client.simulator import DeribitSimulator

    with DeribitSimulator() as simulator:
        # Credentials in the environment are meant for Deribit: never send them to the simulator.
        overrides["host"] = simulator.url
        configuration = Configuration(access_token=simulator.issue_token(), **overrides)
        yield configuration


def _call(configuration: Configuration, args: argparse.Namespace) -> Any:
    from openapi_client.api.session_management_api import SessionManagementApi
    from openapi_client.api_client import ApiClient

    method_name, _, scoped = COMMANDS[args.command]
    call_args: List[Any] = [args.interval] if args.command == "set-heartbeat" else []
    keywords = {"scope": args.scope} if scoped and args.scope else {}
    with ApiClient(configuration) as client:
        method: Callable[..., Any] = getattr(SessionManagementApi(client), method_name)
        return method(*call_args, **keywords)


def _one_line(error: OpenApiException) -> str:
    if isinstance(error, ApiException):
        text = str(error).splitlines()[0]
        if error.status and error.error_code is not None:
            text += f" (HTTP {error.status})"
        return text
    return str(error)


def main(
    argv: Optional[Sequence[str]] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run the command line; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        with _target(args) as configuration:
            data = _call(configuration, args)
    except ApiException as error:
        print(f"{PROG}: error: {_one_line(error)}", file=err)
        return EXIT_FAILED
    except OpenApiException as error:
        print(f"{PROG}: error: {_one_line(error)}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=err)
        return 130
    json.dump(data, out, indent=2, sort_keys=True)
    out.write("\n")
    return 0


def console_main() -> None:
    """Entry point of the ``deribit-session`` console script."""
    sys.exit(main())
