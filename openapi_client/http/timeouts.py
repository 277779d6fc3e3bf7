"""Timeouts: the connect and read timeouts of a request, and the errors of a deadline run out."""

from __future__ import annotations

from typing import NamedTuple

from openapi_client.deadline import Deadline
from openapi_client.exceptions import ApiTimeoutError

__all__ = ["RequestTimeout", "deadline_error", "pool_wait_timeout", "time_left"]


class RequestTimeout(NamedTuple):
    """Connect and read timeouts in seconds."""

    connect: float
    read: float


def time_left(deadline: Deadline, where: str) -> float:
    remaining = deadline.remaining()
    if remaining <= 0.0:
        raise deadline_error(where, deadline)
    return remaining


def deadline_error(where: str, deadline: Deadline) -> ApiTimeoutError:
    if deadline.setting == "call_timeout":
        text = f"the exchange with {where} ran out of the {deadline.describe()}"
    else:
        text = f"the exchange with {where} did not finish within {deadline.describe()}"
    error = ApiTimeoutError(text)
    error.__cause__ = TimeoutError(deadline.describe())  # replaced by `from` where one exists
    return error


def pool_wait_timeout(where: str, deadline: Deadline, cap: int) -> ApiTimeoutError:
    error = ApiTimeoutError(
        f"no connection to {where} came free within the {deadline.describe()} "
        f"(max_connections = {cap} were all busy)"
    )
    error.__cause__ = TimeoutError(deadline.describe())
    return error
