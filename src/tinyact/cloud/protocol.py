"""uvicorn's HTTP protocol with a request deadline, so slow or silent clients cannot hold connections.

uvicorn's own timeouts only start after a finished request (keep-alive): an idle socket, headers sent a byte at
a time or a body that never ends held a connection for as long as the client liked, counting against
``max_connections``. :class:`RequestDeadlineProtocol` closes a connection that has not sent one whole request
(headers and body) within ``timeout_s`` of opening or of its previous response. A request whose body has
arrived is never cut: the deadline only measures the client. It builds on the h11 protocol because
``h11_max_incomplete_event_size`` (the header size limit) only applies to h11.

Module-level (not a closure) so the multi-worker server can pickle it for its worker processes; bind the
timeout with ``functools.partial(RequestDeadlineProtocol, timeout_s=…)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class RequestDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes connections whose client has not sent a whole request in ``timeout_s``."""

    def __init__(self, *args: Any, timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_s = timeout_s
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(self.timeout_s, self._deadline_passed)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        cycle = self.cycle
        waiting_for_client = cycle is None or cycle.response_complete or cycle.more_body
        if waiting_for_client and not self.transport.is_closing():
            self.transport.close()
