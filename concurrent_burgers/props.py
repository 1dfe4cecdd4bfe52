"""Props for the stories: a shelf of simulated slow files.

Reading a file from a slow disk or a far-away server is mostly waiting. A
:class:`SlowFiles` shelf makes that waiting visible: every read takes ``delay``
seconds, is counted while it is in flight and lands in an event log, so a notebook
can draw who waited when.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import anyio

from concurrent_burgers.testing import EventLog, InFlightCounter

SAMPLE_FILES: dict[str, str] = {
    "menu.txt": "cheeseburger, veggie burger, fries",
    "orders.txt": "table 4: two cheeseburgers",
    "staff.txt": "cashier: Ana; cook: Bo",
    "supplies.txt": "buns: 40, patties: 35",
}


class SlowFiles:
    """Files that take ``delay`` seconds to read, like a slow disk or network share.

    ``await shelf.read(name)`` waits without blocking (other tasks run meanwhile);
    ``shelf.read_blocking(name)`` waits with ``time.sleep`` and blocks its thread.
    ``shelf.in_flight`` counts reads in progress and ``shelf.log`` records each one.
    """

    def __init__(
        self,
        contents: Mapping[str, str] | None = None,
        delay: float = 0.5,
        log: EventLog | None = None,
    ) -> None:
        self.contents = dict(SAMPLE_FILES if contents is None else contents)
        self.delay = delay
        self.log = log if log is not None else EventLog()
        self.in_flight = InFlightCounter()

    @property
    def names(self) -> list[str]:
        """The file names on the shelf, in a fixed order."""
        return list(self.contents)

    def _content(self, name: str) -> str:
        try:
            return self.contents[name]
        except KeyError:
            raise FileNotFoundError(f"no file called {name!r} on this shelf") from None

    async def read(self, name: str) -> str:
        """Read ``name``, waiting ``delay`` seconds without blocking the event loop."""
        with self.in_flight, self.log.span(f"read {name}", who=name):
            await anyio.sleep(self.delay)
            return self._content(name)

    def read_blocking(self, name: str) -> str:
        """Read ``name``, waiting ``delay`` seconds with ``time.sleep`` (blocks the thread)."""
        with self.in_flight, self.log.span(f"read {name}", who=name):
            time.sleep(self.delay)
            return self._content(name)
