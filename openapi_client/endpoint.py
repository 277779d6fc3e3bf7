"""What an endpoint is: its path, whether it needs credentials, its parameters and its answer.

Each API method is declared once as an :class:`Endpoint` in :mod:`openapi_client.api.endpoints`,
and the API classes (synchronous and :mod:`openapi_client.aio`) are generated from those
declarations; every method then takes the same path through the client's ``call``. Parameters
check their arguments before any request (while ``Configuration.client_side_validation`` is on)
and encode them for the query string or the JSON-RPC ``params``.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from openapi_client.exceptions import ApiTypeError, ApiValueError
from openapi_client.redaction import register_secret

__all__ = [
    "ApiGroup",
    "ChoiceParam",
    "Endpoint",
    "NumberParam",
    "Param",
    "SessionEffect",
    "TextParam",
]


class Param:
    """A query parameter.

    :param name: the name on the wire and of the Python argument.
    :param required: whether a call without it is refused.
    :param description: what the value means, with its unit.
    """

    __slots__ = ("description", "name", "required")

    def __init__(self, name: str, *, required: bool = False, description: str = "") -> None:
        self.name = name
        self.required = required
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, required={self.required})"

    def encode(self, value: Any, validate: bool) -> str:
        """The query-string form of ``value``, checked first when ``validate`` is true."""
        if validate:
            self.check(value)
        return quote(str(value), safe="")

    def json_value(self, value: Any, validate: bool) -> Any:
        """The JSON-RPC ``params`` form of ``value``, checked first when ``validate`` is true."""
        if validate:
            self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Raise ``ApiTypeError``/``ApiValueError`` when ``value`` is not acceptable."""

    @property
    def annotation(self) -> str:
        """The argument's type as the generated API methods write it (names from
        :mod:`openapi_client.models`, ``Literal`` and builtins)."""
        return "Any"


class NumberParam(Param):
    """A real number (``int`` or ``float``, not ``bool`` or text), finite, at least ``minimum``."""

    __slots__ = ("minimum", "unit")

    def __init__(
        self,
        name: str,
        *,
        required: bool = False,
        description: str = "",
        minimum: float | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, required=required, description=description)
        self.minimum = minimum
        self.unit = unit

    def _expected(self) -> str:
        expected = "a finite number"
        if self.minimum is not None:
            expected += f" >= {self.minimum:g}"
        return f"{expected} {self.unit}".rstrip()

    def check(self, value: Any) -> None:
        kind = type(value)
        # A plain int or float (nearly every call) is a real number: no need to ask the ABC.
        if kind is not int and kind is not float and (
            isinstance(value, bool) or not isinstance(value, numbers.Real)
        ):
            raise ApiTypeError(
                f"{self.name} must be {self._expected()} (int or float), "
                f"got {type(value).__name__} {value!r}",
                valid_classes=(int, float),
            )
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or (self.minimum is not None and number < self.minimum):
            raise ApiValueError(f"{self.name} must be {self._expected()}, got {value!r}")

    @property
    def annotation(self) -> str:
        return "float"

    def encode(self, value: Any, validate: bool) -> str:
        """The canonical decimal form of the number's value: computed with ``int``'s and
        ``float``'s own methods, so a subclass's ``__str__``/``__repr__`` never reaches the
        query."""
        if validate:
            self.check(value)
        try:
            if isinstance(value, bool):
                return str(value)  # unchecked: sent as given, for the server to judge
            if isinstance(value, int):
                return int.__repr__(value)
            number = float.__float__(value) if isinstance(value, float) else None
            if number is None and isinstance(value, numbers.Real):
                number = float(value)
                if type(number) is not float:
                    number = float.__float__(number)
        except (ValueError, OverflowError, TypeError) as error:
            raise ApiValueError(
                f"{self.name} must be {self._expected()}, got a {type(value).__name__} that "
                "cannot be written as one"
            ) from error
        if number is None:
            return quote(str(value), safe="")  # unchecked: sent as text, for the server to judge
        if number.is_integer():
            return int.__repr__(int(number))
        return float.__repr__(number)

    def json_value(self, value: Any, validate: bool) -> Any:
        if validate:
            self.check(value)
        if type(value) is int:
            return value
        if isinstance(value, bool):
            return value  # unchecked: sent as given, for the server to judge
        if isinstance(value, int):
            return int(value)  # a plain int, whatever subclass came in
        if not isinstance(value, numbers.Real):
            return value
        number = float(value)
        return int(number) if number.is_integer() else number


class ChoiceParam(Param):
    """One of a fixed set of strings.

    :param type_name: the name of the ``Literal`` alias in :mod:`openapi_client.models` that lists
        the same choices (e.g. ``"Scope"``), for the generated methods' annotations; without it
        they spell the ``Literal`` out.
    """

    __slots__ = ("choices", "type_name")

    def __init__(
        self,
        name: str,
        *,
        choices: tuple[str, ...],
        required: bool = False,
        description: str = "",
        type_name: str = "",
    ) -> None:
        super().__init__(name, required=required, description=description)
        self.choices = choices
        self.type_name = type_name

    @property
    def annotation(self) -> str:
        if self.type_name:
            return self.type_name
        return "Literal[" + ", ".join(f'"{choice}"' for choice in self.choices) + "]"

    def check(self, value: Any) -> None:
        allowed = " or ".join(repr(choice) for choice in self.choices)
        if not isinstance(value, str):
            raise ApiTypeError(
                f"{self.name} must be {allowed}, got {type(value).__name__} {value!r}",
                valid_classes=(str,),
            )
        if value not in self.choices:
            raise ApiValueError(f"{self.name} must be {allowed}, got {value!r}")


class TextParam(Param):
    """A string (an ``int`` is accepted for numeric fields such as timestamps).

    ``secret``: the value is a credential (a client secret, a refresh token, a signature): a call
    that carries one registers it for redaction before the request is made, so that a server
    echoing it back never makes it show in an exception, a log line or an event.
    """

    __slots__ = ("allow_int", "secret")

    def __init__(
        self,
        name: str,
        *,
        required: bool = False,
        description: str = "",
        allow_int: bool = False,
        secret: bool = False,
    ) -> None:
        super().__init__(name, required=required, description=description)
        self.allow_int = allow_int
        self.secret = secret

    @property
    def annotation(self) -> str:
        return "int | str" if self.allow_int else "str"

    def check(self, value: Any) -> None:
        accepted: tuple[type, ...] = (str, int) if self.allow_int else (str,)
        if isinstance(value, bool) or not isinstance(value, accepted):
            names = " or ".join(kind.__name__ for kind in accepted)
            raise ApiTypeError(
                f"{self.name} must be {names}, got {type(value).__name__}",
                valid_classes=accepted,
            )


class SessionEffect(enum.Enum):
    """What a successful call does to a WebSocket session's state, which the session then
    restores on every new connection."""

    #: Nothing the session keeps.
    NONE = "none"
    #: Heartbeats at the call's ``interval``.
    SET_HEARTBEAT = "set_heartbeat"
    #: No heartbeats.
    DISABLE_HEARTBEAT = "disable_heartbeat"
    #: Cancel-on-disconnect on (for the call's ``scope``, ``connection`` when not sent).
    ENABLE_CANCEL_ON_DISCONNECT = "enable_cancel_on_disconnect"
    #: Cancel-on-disconnect off (for the call's ``scope``, ``connection`` when not sent).
    DISABLE_CANCEL_ON_DISCONNECT = "disable_cancel_on_disconnect"


class Endpoint:
    """One Deribit method: over HTTP a GET of ``path``, on a WebSocket a JSON-RPC request.

    :param operation: the generated method name, used in error messages.
    :param path: the method path below the API root, e.g. ``/public/set_heartbeat``.
    :param private: whether the method needs credentials.
    :param params: the parameters, in the order they are sent (required ones first: that is also
        their order as positional arguments of the generated methods).
    :param summary: one line on what the method does (the first line of its docstring).
    :param description: the rest of its docstring: what a caller should know, in reST.
    :param result: the ``TypedDict`` from :mod:`openapi_client.models` that describes the decoded
        answer (e.g. ``OkEnvelope``); the generated methods are typed with it.
    :param required_scope: the access scope Deribit requires of the token (e.g.
        ``"account:read_write"``); a token without it is answered 13021 ``forbidden``. ``None``
        for a method anyone may call.
    :param effect: what a successful call does to a WebSocket session's state.
    :param carries_credentials: whether its query can hold a secret or token (``public/auth``),
        so that it is refused over plain http like a call with an ``Authorization`` header.
    """

    __slots__ = (
        "_by_name",
        "carries_credentials",
        "description",
        "effect",
        "operation",
        "params",
        "path",
        "private",
        "required_scope",
        "result",
        "summary",
    )

    def __init__(
        self,
        operation: str,
        path: str,
        *,
        private: bool,
        params: tuple[Param, ...] = (),
        summary: str = "",
        description: str = "",
        result: type[Any] | None = None,
        required_scope: str | None = None,
        effect: SessionEffect = SessionEffect.NONE,
        carries_credentials: bool = False,
    ) -> None:
        self.operation = operation
        self.path = path
        self.private = private
        self.params = params
        self.summary = summary
        self.description = description
        self.result = result
        self.required_scope = required_scope
        self.effect = effect
        self.carries_credentials = carries_credentials
        self._by_name: dict[str, Param] = {param.name: param for param in params}

    def __repr__(self) -> str:
        return f"Endpoint({self.operation!r}, {self.path!r}, private={self.private})"

    @property
    def method(self) -> str:
        """The JSON-RPC method name, e.g. ``public/set_heartbeat``."""
        return self.path.lstrip("/")

    def query(self, args: Mapping[str, Any], validate: bool) -> str:
        """The query string (without ``?``) for ``args``; ``None`` values are left out.

        Raises ``ApiValueError`` for a missing required argument and ``ApiTypeError`` for an
        unknown one, then lets each parameter check and encode its value.
        """
        return "&".join(
            [f"{param.name}={param.encode(value, validate)}" for param, value in self._given(args)]
        )

    def json_params(self, args: Mapping[str, Any], validate: bool) -> dict[str, Any]:
        """The JSON-RPC ``params`` object for ``args``, checked as :meth:`query` checks them."""
        params: dict[str, Any] = {}
        for param, value in self._given(args):
            params[param.name] = param.json_value(value, validate)
        return params

    def _given(self, args: Mapping[str, Any]) -> list[tuple[Param, Any]]:
        """The parameters given a value, in declaration order; refuses unknown and missing ones."""
        for name in args:
            if name not in self._by_name:
                raise ApiTypeError(
                    f"Got an unexpected keyword argument {name!r} to method {self.operation}"
                )
        given = []
        for param in self.params:
            value = args.get(param.name)
            if value is None:
                if param.required:
                    raise ApiValueError(
                        f"Missing the required parameter `{param.name}` when calling "
                        f"`{self.operation}`"
                    )
                continue
            if isinstance(param, TextParam) and param.secret:
                register_secret(value)
            given.append((param, value))
        return given



class ApiGroup:
    """One API class: its name, what it is for, and its endpoints (one method pair each).

    :param name: the class name, e.g. ``"SessionManagementApi"``; the same in
        :mod:`openapi_client.api` and :mod:`openapi_client.aio`.
    :param summary: the class docstring, one line.
    :param description: the opening of the module docstring.
    :param endpoints: its endpoints, in the order of the class's methods.
    """

    __slots__ = ("description", "endpoints", "name", "summary")

    def __init__(
        self, name: str, *, summary: str, description: str, endpoints: tuple[Endpoint, ...]
    ) -> None:
        self.name = name
        self.summary = summary
        self.description = description
        self.endpoints = endpoints

    def __repr__(self) -> str:
        return f"ApiGroup({self.name!r}, {len(self.endpoints)} endpoints)"

    @property
    def module(self) -> str:
        """The module name of its classes, e.g. ``session_management_api``."""
        return "".join(
            f"_{char.lower()}" if char.isupper() and index else char.lower()
            for index, char in enumerate(self.name)
        )
