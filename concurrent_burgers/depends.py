"""Props for notebook 10: the libraries a chain of FastAPI dependencies uses.

The exercise is the burger shop's **pantry app**. Its libraries:

* :class:`Pantry`: a *blocking* database driver. ``pantry.open()`` opens a
  :class:`PantrySession` (it holds the thread while it connects); the session's
  ``stock(item)``, ``reserve(item, customer)`` and ``close()`` block too;
* :class:`BadgeReader`: an *awaitable* staff-badge service,
  ``await badges.check(badge)`` answers the name on the badge.

The ``Probe...`` classes are the instrumented versions the exercise's tests pass to
``create_app``: they record, in order, every call with the thread it ran on, count the
sessions opened and closed, note a session used after it was closed, can make calls meet
at a thread barrier, and answer with values made up afresh for every test.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio

from concurrent_burgers.testing import EventLog, ThreadGate

# --------------------------------------------------------------------------- the pantry


class PantrySession:
    """One connection to the pantry's database; every method blocks its thread."""

    def __init__(self, pantry: Pantry, number: int) -> None:
        self.pantry = pantry
        self.number = number
        self.closed = False

    def stock(self, item: str) -> int:
        """How many of ``item`` are in the pantry; blocks while the database answers."""
        with self.pantry.log.span(f"stock {item}", who=f"session {self.number}"):
            time.sleep(self.pantry.delay)
        return self.pantry.STOCK.get(item, 0)

    def reserve(self, item: str, customer: str) -> str:
        """Put one ``item`` aside for ``customer``; returns the reservation's code."""
        with self.pantry.log.span(f"reserve {item}", who=f"session {self.number}"):
            time.sleep(self.pantry.delay)
        return f"R{self.number}-{item}-{customer}"

    def close(self) -> None:
        """Close the connection (blocks briefly while it says goodbye)."""
        with self.pantry.log.span("close", who=f"session {self.number}"):
            time.sleep(self.pantry.delay / 5)
        self.closed = True


class Pantry:
    """The pantry's blocking database driver: ``pantry.open()`` opens a session."""

    STOCK: ClassVar[dict[str, int]] = {"buns": 40, "patties": 25, "cheese": 0, "pickles": 12}

    def __init__(self, delay: float = 0.05, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()
        self.opened = 0
        self._lock = threading.Lock()

    def open(self) -> PantrySession:
        """Open a new session; blocks while it connects."""
        with self._lock:
            self.opened += 1
            number = self.opened
        with self.log.span("open", who=f"session {number}"):
            time.sleep(self.delay)
        return PantrySession(self, number)


class BadgeReader:
    """The staff-badge service's async client: ``await badges.check(badge)`` -> a name."""

    NAMES: ClassVar[dict[str, str]] = {"b-17": "Maya", "b-23": "Theo", "b-42": "Ines"}

    def __init__(self, delay: float = 0.05, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()

    async def check(self, badge: str) -> str:
        """The name on ``badge``; waits without blocking while the service answers."""
        async with self.log.span(f"check {badge}", who="badges"):
            await anyio.sleep(self.delay)
        return self.NAMES.get(badge, "unknown")


# --------------------------------------------------------------------------- probes


@dataclass
class Step:
    """One call of a probe: what it was, on which session, and on which thread."""

    what: str
    session: int
    thread: int
    thread_name: str


class SoldOut(Exception):
    """A probe session's reserve failed: the route using the session fails with it."""


@dataclass
class ProbePantry:
    """A blocking pantry that records every call in order, with its thread.

    ``open_gate`` and ``reserve_gate`` (thread barriers) make ``open`` and ``reserve``
    calls meet when they overlap; ``met_open`` and ``met_reserve`` say, per call, whether
    the others arrived. ``late`` lists the calls made on a session already closed.
    Reserving an item of ``sold_out`` raises :class:`SoldOut`, so that a test sees
    whether a route that fails still closes its session.
    """

    items: list[str]
    sold_out: tuple[str, ...] = ()
    open_gate: ThreadGate | None = None
    reserve_gate: ThreadGate | None = None
    steps: list[Step] = field(default_factory=list)
    sessions: list[ProbeSession] = field(default_factory=list)
    late: list[Step] = field(default_factory=list)
    met_open: list[bool] = field(default_factory=list)
    met_reserve: list[bool] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.levels = {item: secrets.randbelow(900) + 100 for item in self.items}

    def record(self, what: str, session: ProbeSession) -> Step:
        step = Step(what, session.number, threading.get_ident(), threading.current_thread().name)
        with self._lock:
            self.steps.append(step)
            if session.closed:
                self.late.append(step)
        return step

    def open(self) -> ProbeSession:
        with self._lock:
            session = ProbeSession(self, len(self.sessions) + 1)
            self.sessions.append(session)
        self.record("open", session)
        if self.open_gate is not None:
            met = self.open_gate.arrive()
            with self._lock:
                self.met_open.append(met)
        return session

    def threads(self) -> set[int]:
        with self._lock:
            return {s.thread for s in self.steps}

    def story(self, number: int) -> list[str]:
        """What happened to session ``number``, in order."""
        with self._lock:
            return [s.what for s in self.steps if s.session == number]


class ProbeSession:
    """A session of a :class:`ProbePantry`; answers are the pantry's fresh secrets."""

    def __init__(self, pantry: ProbePantry, number: int) -> None:
        self.pantry = pantry
        self.number = number
        self.closed = False
        self.failed = False  # a reserve raised SoldOut: the route failed with this session
        self.codes: dict[tuple[str, str], str] = {}

    def stock(self, item: str) -> int:
        self.pantry.record("stock", self)
        return self.pantry.levels.get(item, 0)

    def reserve(self, item: str, customer: str) -> str:
        self.pantry.record("reserve", self)
        if item in self.pantry.sold_out:
            self.failed = True
            raise SoldOut(item)
        gate = self.pantry.reserve_gate
        if gate is not None:
            met = gate.arrive()
            with self.pantry._lock:
                self.pantry.met_reserve.append(met)
        code = f"res-{secrets.token_hex(4)}"
        self.codes[(item, customer)] = code
        return code

    def close(self) -> None:
        self.pantry.record("close", self)
        self.closed = True


class ProbeBadges:
    """An awaitable badge reader that records the thread each check ran on; names are secrets."""

    def __init__(self, badges: list[str]) -> None:
        self.names = {b: f"cook-{secrets.token_hex(3)}" for b in badges}
        self.threads: list[int] = []
        self._lock = threading.Lock()

    async def check(self, badge: str) -> str:
        with self._lock:
            self.threads.append(threading.get_ident())
        await anyio.sleep(0)
        return self.names.get(badge, "unknown")


def sent_log(app: Any, log: list[str]) -> Any:
    """Wrap an ASGI ``app`` so that each message it sends is noted in ``log`` as it goes out.

    ``httpx.ASGITransport`` hands the client its response only once the app has finished,
    so the client cannot tell whether work ran before or after the response was sent;
    this wrapper, standing where a server would, can.
    """

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        async def noting(message: dict) -> None:
            if message["type"] == "http.response.start":
                log.append(f"response sent: {message['status']}")
            await send(message)

        await app(scope, receive, noting)

    return wrapped
