"""The ``deribit-session`` command line (also ``python -m openapi_client``).

``deribit-session session`` holds a WebSocket session open and prints one JSON object per event
on stdout until Ctrl-C or ``--duration``; the other commands make one HTTP call each and print
the JSON answer. On failure it prints one line on stderr and exits non-zero: 1 when the request
or the session failed (Deribit's error, or the network), 2 when the command was wrong.
Credentials come from the environment (``DERIBIT_ACCESS_TOKEN``, or ``DERIBIT_CLIENT_ID`` and
``DERIBIT_CLIENT_SECRET``), or an asymmetric key's PEM file (``--private-key-file`` or
``DERIBIT_PRIVATE_KEY_FILE``, its password only from ``DERIBIT_PRIVATE_KEY_PASSWORD``, never from
the command line); ``--simulator`` needs none and takes none from the environment, but tries a key
pair given with ``--private-key-file``: its public half is registered with the simulator, its
private half signs the grants.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    TextIO,
    cast,
)

from openapi_client._version import __version__
from openapi_client.configuration import Configuration
from openapi_client.exceptions import (
    MUST_BE_WEBSOCKET,
    ApiException,
    OpenApiException,
)

if TYPE_CHECKING:  # pragma: no cover
    from openapi_client.asymmetric import PrivateKey
    from openapi_client.websocket import Event, WebSocketApiClient

__all__ = ["main"]

PROG = "deribit-session"

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Real seconds per simulated second for ``--simulator session``: a 30 s heartbeat runs as 1.5 s.
SIMULATOR_TIME_SCALE = 0.05
#: The session command's heartbeat interval when ``--heartbeat`` is not given (Deribit's usage
#: policy asks for 30 to 60 s).
DEFAULT_HEARTBEAT = 30.0
#: How often the session command looks at the clock and at Ctrl-C while no event comes, in seconds.
_POLL_SECONDS = 0.2

#: command -> (API method name, help, takes --scope)
COMMANDS: dict[str, Any] = {
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
            "(DERIBIT_AUTH_METHOD picks client_signature, client_credentials or signature), or "
            "DERIBIT_CLIENT_ID and an asymmetric key (--private-key-file or "
            "DERIBIT_PRIVATE_KEY_FILE; an encrypted key's password from "
            "DERIBIT_PRIVATE_KEY_PASSWORD). "
            "Heartbeats and connection-scope cancel-on-disconnect exist only on a WebSocket on "
            "today's Deribit: use the session command for them. "
            "Exit status: 0 ok, 1 the request or session failed, 2 bad usage."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--host", help="API root URL (default: production or $DERIBIT_HOST)")
    where.add_argument("--testnet", action="store_true", help="use test.deribit.com")
    where.add_argument(
        "--simulator",
        action="store_true",
        help=(
            "start the embedded Deribit simulator and run against it (offline, no credentials; "
            "with --private-key-file, try that key pair on it)"
        ),
    )
    parser.add_argument(
        "--legacy-http",
        action="store_true",
        help=(
            "with --simulator: answer the heartbeat and connection-scope cancel-on-disconnect "
            "commands over HTTP, as Deribit's older published API description says (today's "
            "Deribit refuses them with error 10030)"
        ),
    )
    parser.add_argument(
        "--private-key-file",
        metavar="PATH",
        help=(
            "the private key (PEM, Ed25519 or RSA) of an asymmetric API key, used with "
            "DERIBIT_CLIENT_ID instead of DERIBIT_CLIENT_SECRET; an encrypted key's password "
            "comes from DERIBIT_PRIVATE_KEY_PASSWORD (needs the [asymmetric] extra). With "
            "--simulator, its public half is registered with the simulator under a simulated "
            "client id"
        ),
    )
    # Refused with a reason, so that nobody puts a password where ps and shell history see it
    # (and so that no abbreviation of another option swallows one).
    parser.add_argument(
        "--private-key-password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS
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
    summary = "hold a WebSocket session open and print its events as JSON lines"
    session = commands.add_parser("session", help=summary, description=summary)
    session.add_argument(
        "--heartbeat",
        type=float,
        default=DEFAULT_HEARTBEAT,
        metavar="SECONDS",
        help=f"heartbeat interval, >= 10 (default {DEFAULT_HEARTBEAT:g})",
    )
    session.add_argument(
        "--cancel-on-disconnect",
        action="store_true",
        help="enable cancel-on-disconnect on the connection (needs credentials)",
    )
    session.add_argument(
        "--duration",
        type=_duration,
        metavar="SECONDS",
        help="end after SECONDS (default: run until Ctrl-C)",
    )
    session.add_argument(
        "--watchdog",
        type=_duration,
        metavar="SECONDS",
        help=(
            "close the connection without logging out (so cancel-on-disconnect cancels the "
            "orders) when the command's loop has not checked in for SECONDS, >= 1"
        ),
    )
    session.add_argument(
        "--freeze-after",
        type=_duration,
        metavar="SECONDS",
        help="with --watchdog: stop checking in after SECONDS, as a frozen bot would (a demo)",
    )
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


class _RefusePassword(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--private-key-password is refused: a password on the command line is visible to "
            "other users and kept in shell history; set DERIBIT_PRIVATE_KEY_PASSWORD instead"
        )


def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return seconds


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[Configuration]:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.testnet:
        overrides["testnet"] = True
        overrides["host"] = None
    if args.timeout is not None:
        overrides["request_timeout"] = args.timeout
    if args.retries is not None:
        overrides["retries"] = args.retries
    if args.simulator:
        with _simulated(args, overrides) as configuration:
            yield configuration
        return
    if args.private_key_file:
        # The command line wins over the environment: this key, not a secret from there.
        overrides["private_key_file"] = args.private_key_file
        overrides["client_secret"] = None
    yield Configuration.from_env(**overrides)


#: The client id of the simulator's one API key, for a ``--simulator`` run.
SIMULATED_CLIENT_ID = "cli"


@contextlib.contextmanager
def _simulated(args: argparse.Namespace, overrides: dict[str, Any]) -> Iterator[Configuration]:
    """A simulator for this run, and the configuration that reaches it.

    Credentials in the environment are meant for Deribit: none is read, none reaches the
    simulator. Its one API key is made up for the run, or, with ``--private-key-file``, is that
    key pair: the public half, derived here from the loaded private key, registered under a
    simulated client id; the private half signs the ``client_signature`` grants, on the HTTP
    commands as on the session. Only the key's password comes from the environment
    (``DERIBIT_PRIVATE_KEY_PASSWORD``), to decrypt it here.
    """
    from openapi_client.simulator import ApiKey, DeribitSimulator

    session = args.command == "session"
    credentials: dict[str, Any] = {"client_id": SIMULATED_CLIENT_ID}
    if args.private_key_file:
        loaded = Configuration(
            private_key_file=args.private_key_file,
            private_key_password=os.environ.get("DERIBIT_PRIVATE_KEY_PASSWORD") or None,
        )
        key = cast("PrivateKey", loaded.private_key)  # loaded and checked, or it raised
        api_key = ApiKey(SIMULATED_CLIENT_ID, public_key=key.public_key_pem())
        credentials["private_key"] = key
    else:
        secret = secrets.token_hex(16)
        api_key = ApiKey(SIMULATED_CLIENT_ID, client_secret=secret)
        credentials["client_secret"] = secret
    with DeribitSimulator(
        keys=[api_key],
        time_scale=SIMULATOR_TIME_SCALE if session else 1.0,
        legacy_http=args.legacy_http,
    ) as simulator:
        if not session and not args.private_key_file:  # one HTTP call: a token will do
            credentials = {"access_token": simulator.issue_token(SIMULATED_CLIENT_ID)}
        yield Configuration(host=simulator.url, **credentials, **overrides)


def _call(configuration: Configuration, args: argparse.Namespace) -> Any:
    from openapi_client.api.session_management_api import SessionManagementApi
    from openapi_client.api_client import ApiClient

    method_name, _, scoped = COMMANDS[args.command]
    call_args: list[Any] = [args.interval] if args.command == "set-heartbeat" else []
    keywords = {"scope": args.scope} if scoped and args.scope else {}
    with ApiClient(configuration) as client:
        method: Callable[..., Any] = getattr(SessionManagementApi(client), method_name)
        return method(*call_args, **keywords)


# -- the session command --------------------------------------------------------------------------


class _Output:
    """Writes one JSON object per event; remembers when the reader went away (a closed pipe)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.broken = False

    def event(self, event: Event) -> None:
        from openapi_client.websocket.events import as_dict

        if self.broken:
            return
        try:
            self._out.write(json.dumps(as_dict(event)) + "\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):  # the reader closed the pipe, or the stream
            self.broken = True


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM set ``stop`` instead of interrupting whatever runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {number: signal.getsignal(number) for number in handled}

    def request_stop(number: int, frame: Any) -> None:
        stop.set()

    for number in handled:
        signal.signal(number, request_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _hold_session(
    configuration: Configuration, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """Open the session, print its events until Ctrl-C, ``--duration`` or its end, close it.

    Returns the exit status; raises the library's exceptions when the session cannot be
    established (the caller reports them).
    """
    from openapi_client.websocket import WebSocketApiClient

    output = _Output(out)
    stop = threading.Event()
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    ws_client = WebSocketApiClient(
        configuration,
        heartbeat=args.heartbeat,
        cancel_on_disconnect=args.cancel_on_disconnect,
        watchdog=args.watchdog,
    )
    freeze = None if args.freeze_after is None else started + args.freeze_after
    failure: str | None = None
    try:
        with _stop_on_signals(stop):
            failure = _print_events(ws_client, output, stop, deadline, freeze)
    except KeyboardInterrupt:  # arrived before the handler was in place: end the same way
        pass
    finally:
        ws_client.close()
        for event in ws_client.events(timeout=_POLL_SECONDS):
            output.event(event)
    if failure is not None:
        print(f"{PROG}: error: the session ended: {failure}", file=err)
        return EXIT_FAILED
    return 0


def _print_events(
    ws_client: WebSocketApiClient,
    output: _Output,
    stop: threading.Event,
    deadline: float | None,
    freeze: float | None = None,
) -> str | None:
    """Print events until asked to stop; the reason when the session gave up, else None.
    Checks in with the session's watchdog on every turn until ``freeze`` (monotonic), if any:
    this loop is the command's health."""
    from openapi_client.websocket import Closed

    def check_in() -> None:
        if freeze is None or time.monotonic() < freeze:
            ws_client.check_in()

    while not (stop.is_set() or output.broken):
        check_in()
        wait = _POLL_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return None
        for event in ws_client.events(timeout=wait):
            output.event(event)
            if isinstance(event, Closed):
                return event.reason if event.failed else None
            check_in()
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
    return None


# -- reporting ------------------------------------------------------------------------------------


def _one_line(error: OpenApiException, args: argparse.Namespace | None = None) -> str:
    if isinstance(error, ApiException):
        if error.error_code == MUST_BE_WEBSOCKET and args is not None:
            return _websocket_only(error, args)
        text = str(error).splitlines()[0]
        if error.status and error.error_code is not None:
            text += f" (HTTP {error.status})"
        return text
    return str(error)


def _websocket_only(error: ApiException, args: argparse.Namespace) -> str:
    """Error 10030 for a command that needs a WebSocket: say what to run instead."""
    text = f"Deribit error {error.error_code}: {error.error_message}"
    if error.status:
        text += f" (HTTP {error.status})"
    if "heartbeat" in args.command:
        instead = f"{PROG} session --heartbeat SECONDS"
    else:
        instead = f"{PROG} session --cancel-on-disconnect (or --scope account over HTTP)"
    text += f": {args.command} works only on a WebSocket on today's Deribit; run {instead}"
    if args.simulator:
        text += ", or add --legacy-http for the simulator's old HTTP behaviour"
    return text


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
            if args.legacy_http and not args.simulator:
                parser.error("--legacy-http goes with --simulator")
            if getattr(args, "freeze_after", None) is not None and args.watchdog is None:
                parser.error("--freeze-after goes with --watchdog")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        with _target(args) as configuration:
            if args.command == "session":
                return _hold_session(configuration, args, out, err)
            data = _call(configuration, args)
    except ApiException as error:
        print(f"{PROG}: error: {_one_line(error, args)}", file=err)
        return EXIT_FAILED
    except OpenApiException as error:
        print(f"{PROG}: error: {_one_line(error, args)}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    json.dump(data, out, indent=2, sort_keys=True)
    out.write("\n")
    return 0


def console_main() -> None:
    """Entry point of the ``deribit-session`` console script."""
    sys.exit(main())
