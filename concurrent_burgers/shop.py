"""Props for notebook 02: the concurrent burger shop, the parallel shop and the bank.

Two ways to run a burger shop, and one bank, each simulated so a notebook can draw it:

* :class:`BurgerShop` is the *concurrent* shop. ``await shop.order(n)`` gives you a
  :class:`Ticket` with an order number, the kitchen cooks on its own threads (the
  cooks), ``ticket.is_ready()`` looks at the counter and ``await shop.pick_up(ticket)``
  hands the tray over. While the kitchen cooks, you are free: ``await crush.talk()``.
* :class:`PracticeShop` is the same shop with a kitchen that runs on conversation
  instead of a clock: an order is ready after the crush has talked a given number of
  times. Nothing depends on time, so you can practise with it and tests can count.
* :class:`ParallelShop` is the *parallel* shop: no order numbers; a cashier who is
  also a cook takes your order and cooks it while you stand at the counter.
  ``shop.cook(n)`` blocks its thread for the whole time.
* :class:`Bank` is the old-style bank: a few tellers, one line, every teller busy with
  one client from start to finish.
* :class:`WatchedGrill` is for tests: a grill that holds every order until nobody else
  can arrive, so how many orders code cooks at once is a fact, whatever the machine.

Every prop writes what happens into an :class:`~concurrent_burgers.testing.EventLog`,
so ``log.plot()`` shows who did what, when, and on which thread.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import anyio

from concurrent_burgers.testing import HANG_LIMIT, EventLog

# A PracticeShop gives up on a customer who looks at the counter this many times in a
# row without the conversation moving on: that is a busy wait, and the kitchen (which
# only cooks while you talk) would never finish.
BUSY_LIMIT = 200
# A PracticeShop also gives up on a customer who looks at the counter this many times in
# a row, awaiting something between looks but never talking: the loop got its turns, so
# it is no busy wait, but the kitchen (which only cooks while you talk) would never
# finish. Few looks, so that a customer who sleeps between looks gives up within
# seconds, far from the test's time limit, whatever the length of the sleep up to 2 s.
SILENT_LIMIT = 3


def burgers_for(number: int, n: int) -> list[str]:
    """The tray of order ``number``: ``n`` burgers, each labelled with the order number."""
    return [f"burger #{number}"] * n


class BusyWaitError(RuntimeError):
    """Raised by a :class:`PracticeShop` when the counter is checked over and over
    without anything else happening in between (a busy wait)."""


class SilentWaitError(RuntimeError):
    """Raised by a :class:`PracticeShop` when the customer keeps looking at the counter,
    awaiting something else between looks, without ever talking."""


class ShopClosed(RuntimeError):
    """Raised when a closed :class:`PracticeShop` (or a crush who left) is used."""


class _Counter(Protocol):
    """Whatever can tell whether a ticket's burgers are on the counter."""

    def is_ready(self, ticket: Ticket) -> bool: ...


class Ticket:
    """The receipt you get when you order: an order number and nothing to eat yet.

    ``ticket.is_ready()`` looks at the counter: it is True once the burgers of this
    order are waiting there. Looking does not wait; it answers at once.
    """

    __slots__ = ("_burgers", "_counter", "_customer", "_number")

    def __init__(self, number: int, burgers: int, customer: str, counter: _Counter) -> None:
        self._number = number
        self._burgers = burgers
        self._customer = customer
        self._counter = counter

    @property
    def number(self) -> int:
        """The order number: it tells your tray from everybody else's."""
        return self._number

    @property
    def burgers(self) -> int:
        """How many burgers were ordered."""
        return self._burgers

    @property
    def customer(self) -> str:
        """Who ordered."""
        return self._customer

    def is_ready(self) -> bool:
        """True once this order's burgers are on the counter."""
        return self._counter.is_ready(self)

    def __repr__(self) -> str:
        return f"<Ticket #{self._number}: {self._burgers} burger(s) for {self._customer}>"


def _check_order(n: object) -> int:
    if type(n) is not int or n < 1:
        raise ValueError(f"order(n) needs a whole number of burgers, at least 1; got {n!r}")
    return n


def _check_ticket(ticket: object) -> Ticket:
    if not isinstance(ticket, Ticket):
        raise TypeError(
            f"pick_up needs the Ticket that order() gave you; got {type(ticket).__name__}"
        )
    return ticket


class Crush:
    """The person you came with. ``await crush.talk()`` is one round of conversation.

    A talk takes ``talk_time`` seconds of waiting (0 is allowed: the talk still gives
    the event loop a turn). ``crush.talks`` counts the talks that finished. Each talk
    is logged on the row ``who`` (the customer doing the talking).
    """

    def __init__(
        self, *, talk_time: float = 0.05, log: EventLog | None = None, who: str = "you"
    ) -> None:
        self.talk_time = talk_time
        self.log = log if log is not None else EventLog()
        self.who = who
        self.talks = 0
        self._left = False

    async def talk(self) -> None:
        """Talk for a while; other tasks run meanwhile."""
        if self._left:
            raise ShopClosed("the date is over: your crush went home")
        start = self.log.now()
        await anyio.sleep(self.talk_time)
        self.talks += 1
        self.log.record(self.who, "talk", start, self.log.now())

    def leave(self) -> None:
        """End the date: every later ``talk()`` raises :class:`ShopClosed`."""
        self._left = True


# --------------------------------------------------------------------------- the concurrent shop


class Kitchen:
    """The back of a :class:`BurgerShop`: ``cooks`` cooks, each on a thread of its own.

    Orders are cooked first come, first served, each for ``cook_time`` seconds. A
    cook's thread starts when there is work and ends when there is none, so the
    kitchen never leaves a thread behind.
    """

    def __init__(self, cook_time: float = 0.3, cooks: int = 1, log: EventLog | None = None) -> None:
        if cooks < 1:
            raise ValueError("a kitchen needs at least one cook")
        self.cook_time = cook_time
        self.log = log if log is not None else EventLog()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._queue: deque[Ticket] = deque()
        self._ready: set[int] = set()
        self._collected: set[int] = set()
        self._free_cooks = [f"cook {i}" for i in range(cooks, 0, -1)]

    def take(self, n: int, customer: str, counter: _Counter) -> Ticket:
        """Register an order of ``n`` burgers and start cooking it; return its ticket."""
        with self._lock:
            ticket = Ticket(next(self._numbers), n, customer, counter)
            self._queue.append(ticket)
            if self._free_cooks:
                name = self._free_cooks.pop()
                threading.Thread(target=self._work, args=(name,), name=name, daemon=True).start()
        return ticket

    def _work(self, cook: str) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._free_cooks.append(cook)
                    return
                ticket = self._queue.popleft()
            with self.log.span(f"cook #{ticket.number}", who=cook):
                time.sleep(self.cook_time)
            with self._lock:
                self._ready.add(ticket.number)

    def is_ready(self, ticket: Ticket) -> bool:
        """True once the burgers of ``ticket`` wait on the counter."""
        with self._lock:
            return ticket.number in self._ready

    def hand_over(self, ticket: Ticket) -> list[str]:
        """Take the tray of a ready order off the counter."""
        with self._lock:
            if ticket.number in self._collected:
                raise LookupError(f"order #{ticket.number} was already picked up")
            self._collected.add(ticket.number)
        return burgers_for(ticket.number, ticket.burgers)


class BurgerShop:
    """The concurrent burger shop: order, get a number, do something else, pick up.

    ``await shop.order(n)`` queues at the cashier for ``order_time`` seconds and
    returns a :class:`Ticket`; the kitchen starts cooking at once, on its own threads.
    ``await shop.pick_up(ticket)`` hands the burgers over. Called before they are
    ready, it makes you *wait at the counter* (logged as such) until they are.

    ``shop.for_customer(name)`` is the same shop (same kitchen, numbers and log) seen
    by another customer. The cashier trusts the number: whoever shows ticket #3 gets
    the tray of order #3, and its owner later finds the tray gone.
    """

    def __init__(
        self,
        cook_time: float = 0.3,
        *,
        cooks: int = 1,
        order_time: float = 0.05,
        log: EventLog | None = None,
        customer: str = "you",
        kitchen: Kitchen | None = None,
    ) -> None:
        self.log = log if log is not None else (kitchen.log if kitchen else EventLog())
        self.kitchen = kitchen if kitchen is not None else Kitchen(cook_time, cooks, self.log)
        self.order_time = order_time
        self.customer = customer
        self.tickets: list[Ticket] = []

    def for_customer(self, name: str) -> BurgerShop:
        """The same shop for another customer called ``name``."""
        return BurgerShop(
            order_time=self.order_time, log=self.log, customer=name, kitchen=self.kitchen
        )

    def is_ready(self, ticket: Ticket) -> bool:
        """True once the burgers of ``ticket`` wait on the counter (``ticket.is_ready()``)."""
        return self.kitchen.is_ready(ticket)

    async def order(self, n: int) -> Ticket:
        """Order ``n`` burgers at the cashier; return the ticket with your order number."""
        _check_order(n)
        start = self.log.now()
        await anyio.sleep(self.order_time)
        ticket = self.kitchen.take(n, self.customer, self)
        self.tickets.append(ticket)
        self.log.record(self.customer, f"order #{ticket.number}", start, self.log.now())
        return ticket

    async def pick_up(self, ticket: Ticket) -> list[str]:
        """Hand over the burgers of ``ticket``; wait at the counter if they are not ready."""
        _check_ticket(ticket)
        if not ticket.is_ready():
            async with self.log.span("waiting at the counter", who=self.customer):
                while not ticket.is_ready():
                    await anyio.sleep(0.005)
        start = self.log.now()
        await anyio.sleep(0)
        what = f"pick up #{ticket.number}"
        if ticket.customer != self.customer:
            what += f" ({ticket.customer}'s!)"
        tray = self.kitchen.hand_over(ticket)
        self.log.record(self.customer, what, start, self.log.now())
        return tray


# --------------------------------------------------------------------------- practice shop


class _Books:
    """What the fronts of one :class:`PracticeShop` share: order numbers and the log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.numbers = itertools.count(1)
        self.collected: set[int] = set()


class PracticeShop:
    """A burger shop whose kitchen is exactly as fast as your conversation.

    An order is ready once ``crush`` has finished ``talks`` more talks since the order
    was placed. No clock is involved, so the same code always behaves the same way:
    handy for practice, and what the tests use.

    The shop writes down what went wrong (all lists are empty when all went well):

    * ``counter_waits``: ``(order number, talks so far, talks needed)`` for every
      pick-up of burgers that were not ready yet (you stood at the counter; the kitchen
      then finished while you waited);
    * ``foreign_pickups``: order numbers of other customers' tickets shown here;
    * ``talks_at_pickup``: talks since the order, at each pick-up;
    * ``busy``: True once the counter was checked :data:`BUSY_LIMIT` times in a row
      without the event loop getting a single turn in between (no await at all: a busy
      wait); ``is_ready()`` then raises :class:`BusyWaitError`;
    * ``silent``: True once the counter was checked :data:`SILENT_LIMIT` times in a row,
      the loop getting turns in between (something was awaited) but no talk finishing;
      ``is_ready()`` then raises :class:`SilentWaitError`.

    Whether the loop got a turn between two looks is a fact, not a measurement: each
    look schedules a callback on the running loop, and the loop runs it only once the
    looking task has awaited something.

    ``for_customer(name, crush, talks)`` opens another front of the same shop (shared
    order numbers) for another couple; ``close()`` ends everything, so a runaway loop
    stops at its next call.
    """

    def __init__(
        self,
        crush: Crush,
        talks: int,
        *,
        customer: str = "you",
        log: EventLog | None = None,
        _books: _Books | None = None,
    ) -> None:
        if talks < 0:
            raise ValueError("talks must be 0 or more")
        self.crush = crush
        self.talks = talks
        self.customer = customer
        self._books = _books if _books is not None else _Books(log or EventLog())
        self.log = self._books.log
        self.tickets: list[Ticket] = []
        self.counter_waits: list[tuple[int, int, int]] = []
        self.foreign_pickups: list[int] = []
        self.talks_at_pickup: list[int] = []
        self.busy = False
        self.silent = False
        self.closed = False
        self._silent_looks = 0
        self._loop_turned = True
        self._talks_at_order: dict[int, int] = {}
        self._ready: set[int] = set()
        self._looks_without_talk = 0
        self._talks_at_last_look = -1
        self._fronts: list[PracticeShop] = [self]

    def for_customer(self, name: str, crush: Crush, talks: int) -> PracticeShop:
        """Another front of this shop, for the couple ``name`` and ``crush``."""
        front = PracticeShop(crush, talks, customer=name, _books=self._books)
        front._fronts = self._fronts
        self._fronts.append(front)
        return front

    def close(self) -> None:
        """Close every front of the shop and send every crush home."""
        for front in self._fronts:
            front.closed = True
            front.crush.leave()

    def _check_open(self) -> None:
        if self.closed:
            raise ShopClosed("the shop is closed")

    def _talks_since(self, number: int) -> int:
        return self.crush.talks - self._talks_at_order[number]

    def is_ready(self, ticket: Ticket) -> bool:
        """True once the crush has talked enough since ``ticket``'s order."""
        self._check_open()
        turned, self._loop_turned = self._loop_turned, False
        self._note_loop_turn()
        if self.crush.talks != self._talks_at_last_look:
            self._talks_at_last_look = self.crush.talks
            self._looks_without_talk = 1
            self._silent_looks = 0
        elif turned:
            self._looks_without_talk = 1
            self._silent_looks += 1
        else:
            self._looks_without_talk += 1
        if self._looks_without_talk >= BUSY_LIMIT:
            self.busy = True
            raise BusyWaitError(
                f"the counter was checked {BUSY_LIMIT} times in a row without a single await "
                "in between: a busy wait. Put `await crush.talk()` between two looks."
            )
        if self._silent_looks >= SILENT_LIMIT:
            self.silent = True
            raise SilentWaitError(
                f"the counter was checked {SILENT_LIMIT + 1} times in a row, awaiting "
                "something between looks but never a talk. In this shop the kitchen only "
                "cooks while you talk: make `await crush.talk()` the wait between two looks."
            )
        number = ticket.number
        if number not in self._ready and self._talks_since(number) >= self.talks:
            self._ready.add(number)
        return number in self._ready

    def _note_loop_turn(self) -> None:
        def turned() -> None:
            self._loop_turned = True

        try:
            asyncio.get_running_loop().call_soon(turned)
        except RuntimeError:  # not on asyncio: count every look as awaited
            self._loop_turned = True

    async def order(self, n: int) -> Ticket:
        """Order ``n`` burgers; return the ticket with your order number."""
        self._check_open()
        _check_order(n)
        await anyio.sleep(0)
        ticket = Ticket(next(self._books.numbers), n, self.customer, self)
        self._talks_at_order[ticket.number] = self.crush.talks
        self.tickets.append(ticket)
        self.log.mark(f"order #{ticket.number}", who=self.customer)
        return ticket

    async def pick_up(self, ticket: Ticket) -> list[str]:
        """Hand over the burgers of ``ticket``, writing down anything that went wrong."""
        self._check_open()
        _check_ticket(ticket)
        await anyio.sleep(0)
        owner = ticket._counter
        if owner is not self:
            self.foreign_pickups.append(ticket.number)
        if isinstance(owner, PracticeShop):
            number = ticket.number
            talked = owner._talks_since(number) if number in owner._talks_at_order else 0
            self.talks_at_pickup.append(talked)
            if number not in owner._ready and talked < owner.talks:
                self.counter_waits.append((number, talked, owner.talks))
                owner._ready.add(number)  # the kitchen finishes while you stand there
        if ticket.number in self._books.collected:
            raise LookupError(f"order #{ticket.number} was already picked up")
        self._books.collected.add(ticket.number)
        self.log.mark(f"pick up #{ticket.number}", who=self.customer)
        return burgers_for(ticket.number, ticket.burgers)


# --------------------------------------------------------------------------- the parallel shop


class ParallelShop:
    """The parallel burger shop: no order numbers, and every cashier is also a cook.

    ``shop.cook(n)`` is one customer's whole visit: a cashier-cook takes the order,
    cooks it and hands it over, ``cook_time`` seconds in all, while the customer
    stands at the counter. It blocks the calling thread the whole time: that thread
    *is* the cashier-cook. Each visit is logged on a row of its own (``customer 1``,
    ``customer 2``, ... in the order the visits start), coloured by thread.
    """

    def __init__(self, cook_time: float = 0.2, log: EventLog | None = None) -> None:
        self.cook_time = cook_time
        self.log = log if log is not None else EventLog()
        self._lock = threading.Lock()
        self._customers = itertools.count(1)

    def cook(self, n: int) -> list[str]:
        """Take an order of ``n`` burgers, cook it, hand it over (blocking)."""
        _check_order(n)
        with self._lock:
            customer = next(self._customers)
        with self.log.span("waiting at the counter", who=f"customer {customer}"):
            time.sleep(self.cook_time)
        return burgers_for(customer, n)


# --------------------------------------------------------------------------- the watched grill


class WatchedGrill:
    """A grill for tests that measures, without any clock, how many orders cook at once.

    Wrap the function under test with ``grill.serve(fn)`` and cook inside ``with
    grill.order(n):``. Every order stays on the grill until the grill is *settled*: the
    caller of ``fn`` is blocked waiting (not running its own code, not starting a
    thread), every thread started since ``fn`` was called has reached the grill at least
    once, and no order released earlier is still on it. Then nobody else can arrive
    before somebody leaves, so ``peak`` (most orders on the grill at once) is a fact of
    the code, not of the machine's speed: a pool of ``workers`` threads reaches exactly
    ``workers``; one order at a time reaches 1; a thread per order reaches the number of
    orders. Orders cooked on the caller's own thread pass straight through.

    ``release="all"`` lets every order on the grill go at each settling;
    ``release="smallest"`` only the smallest ``n``, so orders finish in a known order
    (a pool then completes order 1 of ``[3, 1, 2]`` first, certainly).

    ``fell_back`` is True if the grill never settled within the test's time limit (code
    that keeps its caller busy in a loop, say); the grill then lets everyone go.
    """

    def __init__(self, release: str = "all", fallback: float = HANG_LIMIT / 2) -> None:
        self.release = release
        self.fallback = fallback
        self.peak = 0
        self.orders = 0
        self.threads: set[str] = set()
        self.on_caller = 0
        self.finished: list[int] = []
        self.fell_back = False
        self._caller: threading.Thread | None = None
        self._old: set[int] = set()
        self._entered: set[int] = set()
        self._held: list[tuple[int, int]] = []  # (n, id) waiting on the grill
        self._released: set[int] = set()
        self._inside_released = 0
        self._ids = itertools.count()
        self._cond = threading.Condition()

    def serve(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as the tests call it: the grill learns which thread is the caller."""

        def served(*args: Any) -> Any:
            self._caller = threading.current_thread()
            self._old = {t.ident or 0 for t in threading.enumerate()}
            return fn(*args)

        return served

    def _caller_waits(self) -> bool:
        frame = sys._current_frames().get(self._caller.ident or -1) if self._caller else None
        if frame is None or not (
            (
                frame.f_code.co_filename == threading.__file__
                and frame.f_code.co_name in ("wait", "join", "_wait_for_tstate_lock")
            )  # an event loop with nothing to run waits in its selector
            or (
                frame.f_code.co_filename.endswith("selectors.py")
                and frame.f_code.co_name == "select"
            )
        ):
            return False  # running (its own code, or a library's), not waiting
        while frame is not None:
            if frame.f_code.co_name == "start" and frame.f_code.co_filename.endswith(
                "threading.py"
            ):
                return False  # starting a thread: it will come to the grill
            frame = frame.f_back
        return True

    def _settled(self) -> bool:
        if self._inside_released or not self._caller_waits():
            return False
        return all(
            t.ident in self._entered
            for t in threading.enumerate()
            if t.ident not in self._old and t is not self._caller and t.is_alive()
        )

    def _let_go(self) -> None:
        if self.release == "smallest":
            chosen = [min(self._held)]
        else:
            chosen = list(self._held)
        for item in chosen:
            self._held.remove(item)
            self._released.add(item[1])
            self._inside_released += 1
        self._cond.notify_all()

    def order(self, n: int) -> _GrillOrder:
        return _GrillOrder(self, n)

    def _enter(self, n: int) -> int | None:
        me = threading.current_thread()
        with self._cond:
            self.orders += 1
            if me is self._caller:
                self.on_caller += 1
                self.peak = max(self.peak, 1)
                return None
            self.threads.add(me.name)
            self._entered.add(me.ident or 0)
            key = next(self._ids)
            self._held.append((n, key))
            self.peak = max(self.peak, len(self._held) + self._inside_released)
            deadline = time.monotonic() + self.fallback
            while key not in self._released:
                if self._settled():
                    self._let_go()
                    continue
                if time.monotonic() > deadline:
                    self.fell_back = True
                    self.release = "all"
                    self._let_go()
                    continue
                self._cond.wait(0.001)  # facts are re-checked; time only bounds a hang
            return key

    def _exit(self, n: int, key: int | None) -> None:
        with self._cond:
            self.finished.append(n)
            if key is not None:
                self._inside_released -= 1
                self._cond.notify_all()


class _GrillOrder:
    def __init__(self, grill: WatchedGrill, n: int) -> None:
        self._grill, self._n, self._key = grill, n, None

    def __enter__(self) -> None:
        self._key = self._grill._enter(self._n)

    def __exit__(self, *exc: object) -> None:
        self._grill._exit(self._n, self._key)


# --------------------------------------------------------------------------- the bank


class Bank:
    """An old-style bank: ``tellers`` tellers (threads), one line, one client per teller.

    ``bank.open(clients)`` serves every client, first come first served, each for
    ``service_time`` seconds, and returns how long each one stood in line. The log
    gets, per client, the time ``in line`` (recorded by the thread that opened the
    bank, which itself just waits) and the time ``at the desk`` (on the teller's thread).
    """

    def __init__(
        self, tellers: int = 2, service_time: float = 0.15, log: EventLog | None = None
    ) -> None:
        self.tellers = tellers
        self.service_time = service_time
        self.log = log if log is not None else EventLog()

    def open(self, clients: list[str]) -> dict[str, float]:
        """Serve ``clients``; return each client's time in line, in seconds."""
        opened = self.log.now()
        served_from: dict[str, float] = {}

        def serve(client: str) -> None:
            served_from[client] = self.log.now()
            with self.log.span("at the desk", who=client):
                time.sleep(self.service_time)

        with ThreadPoolExecutor(self.tellers, thread_name_prefix="teller") as pool:
            list(pool.map(serve, clients))
        for client in clients:
            if served_from[client] - opened > 0.001:
                self.log.record(client, "in line", opened, served_from[client])
        return {client: served_from[client] - opened for client in clients}


# --------------------------------------------------------------------------- test helpers


def date_result(t: Any, outcome: Any, *fronts: PracticeShop) -> Any:
    """The tray ``date_night`` returned, or a failure naming how it waited wrongly.

    Facts are checked in a fixed order: a busy wait (no await between looks), then
    waiting without talking (awaits, but no talk), then whatever the run raised.
    """
    __tracebackhide__ = True
    if any(front.busy for front in fronts):
        unawaited = (
            "; crush.talk() was called without await, so not a single talk happened"
            if outcome.never_awaited
            else ""
        )
        t.fail(
            "date_night kept looking at the counter without awaiting anything in between: "
            "a busy wait.",
            expected="an `await crush.talk()` between two looks at the counter",
            happened=f"the counter was checked {BUSY_LIMIT} times in a row and the event loop "
            f"never got a turn{unawaited}",
            topic="busy-wait",
        )
    if any(front.silent for front in fronts):
        t.fail(
            "date_night waited for the burgers without talking.",
            expected="`await crush.talk()` as the wait between two looks at the counter",
            happened=f"it looked at the counter {SILENT_LIMIT + 1} times in a row and awaited "
            "something between looks (so this is no busy wait), but your crush never said a "
            "word; in this shop the kitchen cooks only while you talk",
            topic="waits-without-talking",
        )
    return outcome.result()


def served_result(t: Any, outcome: Any, what: str = "parallel_burgers") -> Any:
    """What a blocking call returned, or a failure saying it did not finish or raised."""
    __tracebackhide__ = True
    if outcome.timed_out:
        t.fail(
            f"{what} did not finish.",
            expected=f"{what} to return in well under {HANG_LIMIT:.0f} seconds",
            happened=f"it was still running after {HANG_LIMIT:.0f} seconds",
            topic="never-returns",
        )
    return outcome.result()


def check_tray_list(t: Any, result: Any, expected: list[Any]) -> None:
    """Fail, naming the mistake, unless ``result`` is exactly the list ``expected``."""
    __tracebackhide__ = True
    if t.awaitable_items(result):
        t.fail(
            "parallel_burgers returned futures instead of the trays.",
            expected=f"a list of trays: {expected}",
            happened=f"the list held {t.describe(result[0])}",
            topic="returns-futures",
        )
    if type(result) is not list and hasattr(result, "__next__"):
        t.fail(
            "parallel_burgers returned an iterator, not a list.",
            expected=f"a list of trays: {expected}",
            happened=f"it returned {t.describe(result)}, which gives the trays one by one "
            "to whoever loops over it; the threading itself is not in question here",
            topic="returns-iterator",
        )
    if type(result) is list and sorted(map(repr, result)) == sorted(map(repr, expected)):
        t.expect(
            t.strict_equal(result, expected),
            "parallel_burgers returned the trays in the order they finished.",
            expected=f"the order of the orders: {expected}",
            happened=f"{result}",
            topic="completion-order",
        )
    t.expect(
        t.strict_equal(result, expected),
        "parallel_burgers did not return the tray of every order.",
        expected=f"{expected}",
        happened=f"parallel_burgers returned {t.describe(result)}",
    )


def check_not_one_at_a_time(t: Any, grill: WatchedGrill, workers: int) -> None:
    """Fail if the grill saw only one order at a time, saying how that happened."""
    __tracebackhide__ = True
    if grill.peak > 1 or grill.orders < 2:
        return
    if grill.on_caller == grill.orders:
        how = (
            "every order was cooked on the thread that called parallel_burgers, one after "
            "another: calling cook(n) in a loop uses no other thread"
        )
    else:
        how = (
            f"the orders were cooked on {t.plural(len(grill.threads), 'thread')}, but each "
            "order had finished before the next one was handed over: the code waited for "
            "each tray (say, .result() right after submit, or join() right after start) "
            "before giving out the next order"
        )
    t.fail(
        "parallel_burgers cooked one order at a time.",
        expected=f"{workers} orders on the grill at once (workers={workers})",
        happened=how,
        topic="one-thread",
    )
