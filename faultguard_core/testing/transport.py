"""A scripted transport for tests that must not open sockets.

`ScriptedTransport` responds to each request with the next step of a script, so
retry and fallback logic can be tested with a `FakeClock` and no network. A
step that is an exception instance is raised; a step that is `HANG` waits
until the attempt is cancelled.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import anyio

from faultguard_core.transport.base import (
    Transport,
    UpstreamRequest,
    UpstreamResponse,
)

HANG = object()
"""A script step that never responds; the attempt waits until cancelled."""

Step = UpstreamResponse | BaseException | object


def response(
    status_code: int = 200,
    body: bytes = b'{"ok": true}',
    headers: Iterable[tuple[str, str]] = (("content-type", "application/json"),),
) -> UpstreamResponse:
    """Build a complete response step."""
    return UpstreamResponse(status_code, tuple(headers), body)


class ScriptedTransport(Transport):
    """Returns scripted steps in order; the last step repeats.

    `requests` records every request with the timeout it was sent with.
    """

    def __init__(self, *steps: Step) -> None:
        if not steps:
            steps = (response(),)
        self._steps = list(steps)
        self.requests: list[tuple[UpstreamRequest, float]] = []
        self.closed = False

    def script(self, *steps: Step) -> None:
        """Replace the remaining steps."""
        self._steps = list(steps)

    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        self.requests.append((request, timeout))
        step = self._steps.pop(0) if len(self._steps) > 1 else self._steps[0]
        if step is HANG:
            await anyio.sleep_forever()
        if isinstance(step, BaseException):
            # A copy per raise, so a repeated step never grows one traceback.
            raise copy.copy(step)
        if isinstance(step, UpstreamResponse):
            await anyio.lowlevel.checkpoint()
            return step
        raise TypeError(f"invalid script step {step!r}")

    async def aclose(self) -> None:
        self.closed = True
