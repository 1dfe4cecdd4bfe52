"""Props for notebook 09: libraries that a FastAPI app calls, awaitable or blocking.

The demonstrations tell the story of a town's **weather kiosk**:

* :class:`WeatherFeed` is an *awaitable* client: ``await feed.forecast(city)`` waits
  without blocking, like an async HTTP client;
* :class:`Almanac` is a *blocking* legacy library: ``almanac.lookup(city)`` holds its
  thread while it waits (``time.sleep``), like a database driver without async support.

The exercise is the burger shop's counter app. Its libraries:

* :class:`Kitchen`: awaitable, ``await kitchen.status(number)``;
* :class:`Till`: blocking, ``till.print_receipt(number)``;
* :class:`LoyaltyDesk`: a vendor's SDK, ``loyalty.points(customer)``, whose documentation
  does not say whether it waits.

The ``Probe...`` classes are the instrumented versions the exercise's tests pass to
``create_app``: they record the thread (and the async library) each call ran on, meet
at barriers, and answer with values made up afresh for every test, so an answer cannot
know them in advance.

Everything writes into an :class:`~concurrent_burgers.testing.EventLog` when given one,
so ``log.plot()`` shows which thread ran what, and when.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio

from concurrent_burgers.testing import EventLog, ThreadGate


def _running_library() -> str | None:
    import sniffio

    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


# --------------------------------------------------------------------------- the kiosk


class WeatherFeed:
    """An awaitable weather service client: ``await feed.forecast(city)``."""

    FORECASTS: ClassVar[dict[str, str]] = {
        "Lisbon": "sunny",
        "Oslo": "snow",
        "Cork": "rain",
        "Turin": "fog",
    }

    def __init__(self, delay: float = 0.1, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log

    async def forecast(self, city: str) -> str:
        """The forecast for ``city``; waits ``delay`` seconds without blocking."""
        if self.log is None:
            await anyio.sleep(self.delay)
        else:
            async with self.log.span(f"forecast {city}", who=f"feed: {city}"):
                await anyio.sleep(self.delay)
        return self.FORECASTS.get(city, "unknown")


class Almanac:
    """A blocking legacy library: ``almanac.lookup(city)`` holds its thread while it waits."""

    RECORDS: ClassVar[dict[str, float]] = {
        "Lisbon": 44.9,
        "Oslo": 35.0,
        "Cork": 31.5,
        "Turin": 38.6,
    }

    def __init__(self, delay: float = 0.1, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log

    def lookup(self, city: str) -> float:
        """The record high temperature of ``city``; blocks for ``delay`` seconds."""
        if self.log is None:
            time.sleep(self.delay)
        else:
            with self.log.span(f"lookup {city}", who=f"almanac: {city}"):
                time.sleep(self.delay)
        return self.RECORDS.get(city, 0.0)


# --------------------------------------------------------------------------- the counter


class Kitchen:
    """The kitchen's order-status client, awaitable: ``await kitchen.status(number)``."""

    STATUSES: ClassVar[dict[int, str]] = {
        1: "ready",
        2: "cooking",
        3: "waiting for buns",
        4: "ready",
    }

    def __init__(self, delay: float = 0.05, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()

    async def status(self, number: int) -> str:
        """The status of order ``number``; waits without blocking while the kitchen looks."""
        async with self.log.span(f"status {number}", who="kitchen"):
            await anyio.sleep(self.delay)
        return self.STATUSES.get(number, "unknown")


class Till:
    """The till's receipt printer driver, blocking: ``till.print_receipt(number)``."""

    def __init__(self, delay: float = 0.05, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()

    def print_receipt(self, number: int) -> str:
        """Print the receipt of order ``number`` and return its text; holds the thread meanwhile."""
        with self.log.span(f"receipt {number}", who="till"):
            time.sleep(self.delay)
        return f"receipt for order {number}"


class LoyaltyDesk:
    """A vendor's loyalty-card SDK: ``loyalty.points(customer)``.

    Its documentation does not say whether ``points`` waits for the vendor's server.
    """

    def __init__(self, delay: float = 0.05, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()

    def points(self, customer: str) -> int:
        """The loyalty points of ``customer``."""
        with self.log.span(f"points {customer}", who="loyalty"):
            time.sleep(self.delay)  # it does wait, as it happens; nothing in its name says so
        return len(customer) * 10


MENU: dict[str, float] = {"burger": 4.5, "cheeseburger": 5.25, "fries": 2.0, "shake": 3.75}


# --------------------------------------------------------------------------- probes


@dataclass
class Call:
    """One call of a probe library: what was asked, on which thread and async library."""

    what: Any
    thread: int
    thread_name: str
    library: str | None


@dataclass
class _Probe:
    calls: list[Call] = field(default_factory=list)
    answers: dict[Any, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # A blocking probe's calls may meet at a thread barrier: ``met`` says, per call,
    # whether the others arrived.
    gate: ThreadGate | None = None
    met: list[bool] = field(default_factory=list)

    def _record(self, what: Any) -> None:
        call = Call(
            what, threading.get_ident(), threading.current_thread().name, _running_library()
        )
        with self._lock:
            self.calls.append(call)

    def _meet_at_gate(self) -> None:
        if self.gate is not None:
            met = self.gate.arrive()
            with self._lock:
                self.met.append(met)

    def threads(self) -> set[int]:
        with self._lock:
            return {c.thread for c in self.calls}


class ProbeKitchen(_Probe):
    """An awaitable kitchen that records where ``status`` ran; statuses are fresh secrets."""

    def __init__(self, numbers: list[int]) -> None:
        super().__init__()
        self.answers = {n: f"status-{secrets.token_hex(4)}" for n in numbers}

    async def status(self, number: int) -> str:
        self._record(number)
        await anyio.sleep(0)
        await anyio.sleep(0)
        return self.answers.get(number, "unknown")


class ProbeTill(_Probe):
    """A blocking till whose calls meet at a thread barrier (``gate``) when they overlap.

    With a ``beat`` (a :class:`~concurrent_burgers.testing.Heartbeat` on the app's
    loop), each call also waits for the loop to tick while it blocks: ``loop_free``
    lists whether it did.
    """

    def __init__(self, numbers: list[int], gate: ThreadGate | None = None, beat: Any = None):
        super().__init__(gate=gate)
        self.answers = {n: f"receipt-{secrets.token_hex(4)}" for n in numbers}
        self.beat = beat
        self.loop_free: list[bool] = []

    def print_receipt(self, number: int) -> str:
        self._record(number)
        self._meet_at_gate()
        if self.beat is not None:
            free = self.beat.wait_for_ticks(2)
            with self._lock:
                self.loop_free.append(free)
        return self.answers.get(number, "no such order")


class ProbeLoyalty(_Probe):
    """A loyalty SDK that, in fact, blocks: its calls meet at a thread barrier when they overlap."""

    def __init__(self, customers: list[str], gate: ThreadGate | None = None):
        super().__init__(gate=gate)
        self.answers = {c: secrets.randbelow(9000) + 1000 for c in customers}

    def points(self, customer: str) -> int:
        self._record(customer)
        self._meet_at_gate()
        return self.answers.get(customer, 0)


def fresh_menu() -> dict[str, float]:
    """A menu with prices made up for one test (in quarters, so totals are exact)."""
    items = ["burger", "fries", "shake", "salad", "nuggets"]
    return {item: (secrets.randbelow(40) + 4) / 4 for item in items}


async def uses_thread_pool(request: Any) -> bool:
    """Send one request with the default thread limiter at 0 tokens: did it need a token?

    ``request`` is a zero-argument async callable (a GET through an ASGI client). Runs
    inside the caller's event loop; the limiter's tokens are restored afterwards. A route
    that never uses the thread pool answers; a ``def`` route (or anything that calls
    ``to_thread``) waits for a token that never comes, which shows as a waiting borrower:
    then the request is cancelled and the answer is True. No clock decides the verdict.
    """
    limiter = anyio.to_thread.current_default_thread_limiter()
    saved = limiter.total_tokens
    limiter.total_tokens = 0
    answered = False
    try:
        async with anyio.create_task_group() as tg:

            async def send() -> None:
                nonlocal answered
                await request()
                answered = True

            tg.start_soon(send)
            while not answered and limiter.statistics().tasks_waiting == 0:
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
    finally:
        limiter.total_tokens = saved
    return not answered
