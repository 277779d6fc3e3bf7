"""Write the API classes from their declarations in :mod:`openapi_client.api.endpoints`.

Each :class:`~openapi_client.endpoint.ApiGroup` of ``endpoints.APIS`` becomes two modules with the
same class: ``openapi_client/api/<module>.py`` (synchronous, over ``self.api_client.call``) and
``openapi_client/aio/api/<module>.py`` (every method ``async def``, over
``await self.api_client.call``). Both are plain code with typed ``@overload``s, committed, so
type checkers and IDEs read them as they read any module.

After changing a declaration, run from anywhere::

    python -m openapi_client.api._generate

``--check`` writes nothing and exits with status 1 when a file differs from what the
declarations give (``test/test_api_generation.py`` fails the same way).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from openapi_client import models
from openapi_client.endpoint import ApiGroup, Endpoint

__all__ = ["PACKAGE", "generated_files", "main", "render"]

#: The package directory the generated paths are relative to.
PACKAGE = Path(__file__).resolve().parent.parent

_LINE = 100
_COMMAND = "python -m openapi_client.api._generate"

_KEYWORDS_DOC = '''\
Every method returns the decoded JSON-RPC envelope as a ``dict`` (typed as the ``TypedDict``s of
:mod:`openapi_client.models`) and accepts the generated-style keywords:

* ``async_req`` (bool): run in the client's thread pool and return an ``AsyncResult``;
* ``_return_http_data_only`` (bool): ``False`` returns ``(data, status, headers)``;
* ``_preload_content`` (bool): ``False`` returns the undecoded response;
* ``_request_timeout`` (float or ``(connect, read)``): seconds, overriding
  ``Configuration.request_timeout`` for this call.

Each has a ``*_with_http_info`` twin returning ``(data, status, headers)``. The overloads tell a
type checker what each combination returns; required parameters are required there, while at
run time a missing one still raises a clear ``ApiValueError``.'''

_ASYNC_INTRO = (
    "The asyncio twin of :mod:`openapi_client.api.{module}`: the same class name, methods, "
    "parameters and results, every method a coroutine awaiting the asyncio client it is given "
    "(an :class:`~openapi_client.aio.api.base.AsyncCaller`)."
)

_ASYNC_KEYWORDS_DOC = '''\
Every method returns the decoded JSON-RPC envelope as a ``dict`` (typed as the ``TypedDict``s of
:mod:`openapi_client.models`) and accepts the generated-style keywords:

* ``_return_http_data_only`` (bool): ``False`` returns ``(data, status, headers)``;
* ``_preload_content`` (bool): ``False`` returns the undecoded answer;
* ``_request_timeout`` (float or ``(connect, read)``): seconds, overriding
  ``Configuration.request_timeout`` for this call.

``async_req`` is refused with ``ApiTypeError``: every call is already a coroutine; run calls
concurrently with ``asyncio.create_task`` or ``asyncio.gather``. Each method has a
``*_with_http_info`` twin returning ``(data, status, headers)``. The overloads tell a type checker
what each combination returns; required parameters are required there, while at run time a
missing one still raises a clear ``ApiValueError``.'''


class _Overload(NamedTuple):
    """One typed ``@overload``: its keyword parameters and its return type, where ``{}`` stands
    for the endpoint's result type."""

    keywords: tuple[str, ...]
    returns: str


class _Flavour(NamedTuple):
    """What makes the synchronous and the asyncio modules differ."""

    package: str
    is_async: bool
    keywords_doc: str
    data: tuple[_Overload, ...]
    with_http_info: tuple[_Overload, ...]
    type_checking: tuple[str, ...]
    call: str


_NOW = "async_req: Literal[False] = ..."
_LATER = "async_req: Literal[True]"
_TIMEOUT = "_request_timeout: Timeout | None = ..."
_PRELOADED = "_preload_content: Literal[True] = ..."
_DATA_ONLY = "_return_http_data_only: Literal[True] = ..."

SYNC = _Flavour(
    package="openapi_client.api",
    is_async=False,
    keywords_doc=_KEYWORDS_DOC,
    data=(
        _Overload((_NOW, _TIMEOUT, _PRELOADED, _DATA_ONLY), "{}"),
        _Overload((_LATER, _TIMEOUT, _PRELOADED, _DATA_ONLY), "AsyncResult[{}]"),
        _Overload(("**kwargs: Any",), "Any"),
    ),
    with_http_info=(
        _Overload((_NOW, _TIMEOUT, _PRELOADED), "HttpInfo[{}]"),
        _Overload((_LATER, _TIMEOUT, _PRELOADED), "AsyncResult[HttpInfo[{}]]"),
        _Overload(("**kwargs: Any",), "Any"),
    ),
    type_checking=(
        "from openapi_client.configuration import Timeout",
        "from openapi_client.core import AsyncResult",
    ),
    call="return self.api_client.call",
)

_ANY_OPTIONS = (_TIMEOUT, "_preload_content: bool = ...", "_return_http_data_only: bool = ...")

ASYNC = _Flavour(
    package="openapi_client.aio.api",
    is_async=True,
    keywords_doc=f"{_ASYNC_INTRO}\n\n{_ASYNC_KEYWORDS_DOC}",
    data=(
        _Overload((_TIMEOUT, _PRELOADED, _DATA_ONLY), "{}"),
        _Overload(_ANY_OPTIONS, "Any"),
    ),
    with_http_info=(
        _Overload((_TIMEOUT, _PRELOADED), "HttpInfo[{}]"),
        _Overload(_ANY_OPTIONS, "Any"),
    ),
    type_checking=("from openapi_client.configuration import Timeout",),
    call="return await self._call",
)


def generated_files(declarations: ModuleType | None = None) -> dict[Path, str]:
    """Every generated module's text by its path in the package, from ``declarations`` (the
    module that declares the endpoints and ``APIS``; :mod:`openapi_client.api.endpoints` when
    omitted)."""
    if declarations is None:
        from openapi_client.api import endpoints

        declarations = endpoints
    names = {
        id(value): name for name, value in vars(declarations).items() if isinstance(value, Endpoint)
    }
    files = {}
    for api in declarations.APIS:
        for flavour in (SYNC, ASYNC):
            path = Path(*flavour.package.split(".")[1:], f"{api.module}.py")
            files[path] = render(api, flavour, names)
    return files


def render(api: ApiGroup, flavour: _Flavour, names: dict[int, str]) -> str:
    """The module of ``api``'s class in ``flavour``; ``names`` gives each endpoint's name in the
    declaring module (by ``id``)."""
    constants = []
    for endpoint in api.endpoints:
        if id(endpoint) not in names:
            raise ValueError(
                f"{endpoint.operation} must be a module-level constant of the declarations, "
                "so that the generated methods can import it"
            )
        _check(endpoint)
        constants.append(names[id(endpoint)])
    header = (
        f"Generated by `{_COMMAND}` from the declaration of {api.name} in "
        "openapi_client/api/endpoints.py. Do not edit: change the declaration and regenerate."
    )
    lines = [
        textwrap.fill(header, _LINE, initial_indent="# ", subsequent_indent="# "),
        _docstring(f"{api.description}\n\n{flavour.keywords_doc.format(module=api.module)}", 0),
        "",
        "from __future__ import annotations",
        "",
        "from typing import TYPE_CHECKING, Any, Literal, overload",
        "",
        _import(f"{flavour.package}.base", ["BaseApi"]),
        _import("openapi_client.api.endpoints", constants),
        _import("openapi_client.models", _model_names(api)),
        "",
        "if TYPE_CHECKING:  # pragma: no cover",
        *(f"    {line}" for line in flavour.type_checking),
        "",
        f'__all__ = ["{api.name}"]',
        "",
        "",
        f"class {api.name}(BaseApi):",
        _docstring(api.summary, 4),
    ]
    for endpoint, constant in zip(api.endpoints, constants):
        lines += _methods(endpoint, constant, flavour)
    return "\n".join(lines) + "\n"


def _result_name(endpoint: Endpoint) -> str:
    """The name in :mod:`openapi_client.models` of the endpoint's result type."""
    name: str = getattr(endpoint.result, "__name__", "")
    if endpoint.result is None or getattr(models, name, None) is not endpoint.result:
        raise ValueError(
            f"{endpoint.operation} needs result= a type from openapi_client.models (declare the "
            "answer's TypedDict there)"
        )
    return name


def _check(endpoint: Endpoint) -> None:
    """Refuse a declaration the generated code could not express."""
    _result_name(endpoint)
    optional_seen = False
    for param in endpoint.params:
        if param.required and optional_seen:
            raise ValueError(
                f"{endpoint.operation}: declare the required parameter {param.name!r} before the "
                "optional ones (they become positional arguments in this order)"
            )
        optional_seen = optional_seen or not param.required


def _model_names(api: ApiGroup) -> list[str]:
    """The names of :mod:`openapi_client.models` the module's annotations use."""
    used = {"HttpInfo"}
    for endpoint in api.endpoints:
        used.add(_result_name(endpoint))
        for param in endpoint.params:
            used.update(re.findall(r"[A-Za-z_]\w*", param.annotation))
    return [name for name in used if name in models.__all__]


def _methods(endpoint: Endpoint, constant: str, flavour: _Flavour) -> list[str]:
    """The method and its ``*_with_http_info`` twin, each with its overloads."""
    result = _result_name(endpoint)
    params = [
        f"{param.name}: {param.annotation}" + ("" if param.required else " | None = None")
        for param in endpoint.params
    ]
    arguments = "{" + ", ".join(f'"{param.name}": {param.name}' for param in endpoint.params) + "}"
    lines: list[str] = []
    for twin, overloads in (
        (False, flavour.data),
        (True, flavour.with_http_info),
    ):
        name = endpoint.operation + ("_with_http_info" if twin else "")
        for overload in overloads:
            keywords = list(overload.keywords)
            if not keywords[0].startswith("**"):
                keywords.insert(0, "*")
            lines += ["", "    @overload"]
            lines += _def(
                flavour, name, [*params, *keywords], overload.returns.format(result), ": ..."
            )
        implementation = [
            f"{param.name}: {param.annotation} | None = None" for param in endpoint.params
        ]
        lines += [""]
        lines += _def(flavour, name, [*implementation, "**kwargs: Any"], "Any", ":")
        if twin:
            lines.append(
                _docstring(
                    f"As :meth:`{endpoint.operation}`, returning ``(data, status, headers)``.", 8
                )
            )
        else:
            lines.append(_docstring(_method_doc(endpoint), 8))
        call_arguments = [constant, arguments, "kwargs"]
        if twin or flavour.is_async:
            call_arguments.append(str(twin))
        lines += _call(flavour.call, call_arguments)
    return lines


def _method_doc(endpoint: Endpoint) -> str:
    """The docstring of an endpoint's method."""
    if endpoint.required_scope:
        access = f"needs credentials whose token has the ``{endpoint.required_scope}`` scope"
    elif endpoint.private:
        access = "needs credentials"
    else:
        access = "needs no credentials"
    parts = [endpoint.summary, f"Deribit's ``{endpoint.method}``; {access}. {endpoint.description}"]
    fields = [
        f":param {param.name}: {param.description}" + (" Required." if param.required else "")
        for param in endpoint.params
    ]
    if endpoint.params:
        fields.append(":raises ApiTypeError: an argument of the wrong type, or an unknown keyword.")
        fields.append(
            ":raises ApiValueError: a required argument missing, or a value out of range."
        )
    result = _result_name(endpoint)
    fields.append(f":return: the envelope, a :class:`~openapi_client.models.{result}`.")
    parts.append("\n".join(fields))
    return "\n\n".join(part.strip() for part in parts if part.strip())


def _docstring(text: str, indent: int) -> str:
    """``text`` as a triple-quoted docstring: a one-line paragraph is wrapped to the line length,
    a paragraph of ``:field:`` lines keeps one field a line (continued four columns in), and any
    other paragraph of several lines is kept as written."""
    pad = " " * indent
    paragraphs: list[str] = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.splitlines()
        opening = pad + ('"""' if not paragraphs else "")
        if all(line.startswith(":") for line in lines):
            paragraphs.append("\n".join(_fill(line, pad, pad + "    ") for line in lines))
        elif len(lines) > 1:
            paragraphs.append(opening + textwrap.indent(paragraph, pad).lstrip())
        else:
            paragraphs.append(_fill(paragraph, opening, pad))
    body = "\n\n".join(paragraphs)
    if "\n" not in body and len(body) + 3 <= _LINE:
        return f'{body}"""'
    return f'{body}\n{pad}"""'


def _fill(text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, _LINE, initial_indent=first, subsequent_indent=rest)


def _import(module: str, names: Sequence[str]) -> str:
    """An import statement, its names in the order ruff's isort keeps them."""
    ordered = sorted(
        names, key=lambda name: (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
    )
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= _LINE:
        return line
    return "\n".join([f"from {module} import (", *(f"    {name}," for name in ordered), ")"])


def _def(flavour: _Flavour, name: str, params: list[str], returns: str, end: str) -> list[str]:
    """A method's ``def`` line(s): on one line when it fits, else its parameters on one line,
    else one a line."""
    head = f"    {'async ' if flavour.is_async else ''}def {name}("
    params = ["self", *params]
    tail = f") -> {returns}{end}"
    joined = ", ".join(params)
    if len(head) + len(joined) + len(tail) <= _LINE:
        return [head + joined + tail]
    if 8 + len(joined) <= _LINE:
        return [head, "        " + joined, "    " + tail]
    return [head, *(f"        {param}," for param in params), "    " + tail]


def _call(head: str, arguments: list[str]) -> list[str]:
    """The ``return`` statement: on one line when it fits, else its arguments on one line, else
    one a line (a dict's items one a line when even it does not fit)."""
    one_line = f"        {head}({', '.join(arguments)})"
    if len(one_line) <= _LINE:
        return [one_line]
    if 12 + len(", ".join(arguments)) <= _LINE:
        return [f"        {head}(", "            " + ", ".join(arguments), "        )"]
    lines = [f"        {head}("]
    for argument in arguments:
        if 13 + len(argument) <= _LINE or not argument.startswith("{"):
            lines.append(f"            {argument},")
            continue
        lines.append("            {")
        lines += [f"                {item}," for item in argument[1:-1].split(", ")]
        lines.append("            },")
    lines.append("        )")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Write the generated modules (or, with ``--check``, list those that differ)."""
    parser = argparse.ArgumentParser(
        prog=_COMMAND, description="Write the API classes from openapi_client/api/endpoints.py."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit with status 1 when a generated module is out of date",
    )
    options = parser.parse_args(argv)
    stale = []
    for relative, text in generated_files().items():
        path = PACKAGE / relative
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not options.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if options.check else 'wrote'}: {path}")
    if options.check and stale:
        print(f"run `{_COMMAND}` to regenerate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
