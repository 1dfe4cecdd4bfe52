"""Props and probes for notebook 11: the thread pool, shared state and background tasks.

The demonstrations tell two stories:

* the **harbour's ferry office**, whose app calls :class:`FerrySDK`, a slow blocking
  booking library, and sends a confirmation after each booking;
* the **museum's turnstile**, which counts visitors in a :class:`ForcedRaceStore`: a
  store with ``read()`` and ``write(value)`` that forces two unprotected updates to
  interleave, so a lost update shows every time, never by luck.

The exercise is the burger shop's order counter. Its real libraries are
:class:`Tally` (the order count, a blocking store), :class:`StampsSDK` (a slow blocking
loyalty-card SDK) and :class:`AuditBook` (a blocking audit writer). The ``Probe...``
classes are the instrumented versions the hidden tests pass to ``create_app``.

:func:`serve_elsewhere` runs an app the way a server does: on an event loop of its own,
with its lifespan (``asgi_lifespan.LifespanManager``; ``httpx.ASGITransport`` does not
run lifespans by itself), and :func:`marking_responses` wraps an app so that the moment
each response is sent appears in an event log.
"""

from __future__ import annotations

import dis
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from concurrent_burgers.testing import _LIBRARY_DIRS, GATE_FALLBACK, EventLog, InFlightCounter

# --------------------------------------------------------------------------- serving


async def marking_responses_app(app: Any, log: EventLog, scope: Any, receive: Any, send: Any):
    async def send_and_mark(message: dict) -> None:
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            log.mark(f"response sent {scope.get('path', '')}", who="server")

    await app(scope, receive, send_and_mark)


def marking_responses(app: Any, log: EventLog) -> Callable[..., Any]:
    """An ASGI app in front of ``app`` that marks in ``log`` when each response is sent.

    ``httpx.ASGITransport`` hands the client its response only once the whole ASGI call
    is over, background tasks included; this mark says when the server *sent* it.
    """

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        await marking_responses_app(app, log, scope, receive, send)

    return wrapper


def serve_elsewhere(app: Any, requests: list[tuple[str, str]]) -> list[Any]:
    """Serve ``app`` on a new event loop in another thread, as a server would.

    Runs the app's lifespan (startup, then shutdown), sends each ``(method, path)`` one
    after the other and returns the JSON answers. Call it from a plain cell.
    """
    import httpx
    from asgi_lifespan import LifespanManager

    answers: list[Any] = []

    async def main() -> None:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app.invalid") as c:
                for method, path in requests:
                    answers.append((await c.request(method, path)).json())

    thread = threading.Thread(target=anyio.run, args=(main,), name="server's loop")
    thread.start()
    thread.join(10)
    return answers


# --------------------------------------------------------------------------- the ferry


class FerrySDK:
    """A slow, blocking booking library: ``sdk.book(passenger)`` holds its thread."""

    def __init__(self, delay: float = 0.1, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log
        self.in_flight = InFlightCounter()

    def book(self, passenger: str) -> str:
        """Book a seat for ``passenger``; blocks for ``delay`` seconds."""
        with self.in_flight:
            if self.log is None:
                time.sleep(self.delay)
            else:
                with self.log.span("booking", who=f"ferry SDK: {passenger}"):
                    time.sleep(self.delay)
        return f"seat for {passenger}"


# --------------------------------------------------------------------------- shared stores

_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


def _held_here(obj: Any) -> bool:
    """Whether ``obj`` is a lock (or Condition, Semaphore) that is taken right now."""
    try:
        if type(obj) is _LOCK:
            return obj.locked()
        if type(obj) is _RLOCK or isinstance(obj, threading.Condition):
            return bool(obj._is_owned())
        if isinstance(obj, threading.Semaphore):
            return obj._value == 0
    except Exception:
        return False
    return False


def _entering_a_taken_lock(frame: Any) -> bool:
    """Whether ``frame`` is stopped at ``with some_lock:`` because another thread holds it.

    A thread blocked there runs no Python code: its innermost frame sits on the
    ``BEFORE_WITH`` instruction, just after the loads that computed the lock (a name,
    then attributes).
    """
    try:
        instructions = list(dis.get_instructions(frame.f_code))
        n = next(i for i, ins in enumerate(instructions) if ins.offset == frame.f_lasti)
        if instructions[n].opname != "BEFORE_WITH":
            return False
        n -= 1
        attributes = []
        while n >= 0 and instructions[n].opname == "LOAD_ATTR":
            attributes.insert(0, instructions[n].argval)
            n -= 1
        base = instructions[n]
        if base.opname.startswith(("LOAD_FAST", "LOAD_DEREF")):
            obj = frame.f_locals.get(base.argval)
        elif base.opname.startswith(("LOAD_GLOBAL", "LOAD_NAME")):
            obj = frame.f_globals.get(base.argval, frame.f_builtins.get(base.argval))
        else:
            return False
        for attribute in attributes:
            obj = getattr(obj, attribute, None)
        return _held_here(obj)
    except Exception:  # an odd frame: not known to wait, which only costs a wait
        return False


class Quiet:
    """Tells, without a clock, when nothing more can happen before a held call ends.

    Made on the event loop that serves the app (``Quiet.here()``): it remembers that
    loop and the threads alive at the time. ``settled(busy)`` holds when the loop waits
    in its selector with nothing ready, and every thread started since is either in
    ``busy`` (held by a probe) or an idle worker of AnyIO's pool.
    """

    def __init__(self, loop: Any, loop_thread: threading.Thread) -> None:
        self.loop = loop
        self.loop_thread = loop_thread
        self.old = {t.ident for t in threading.enumerate()}

    @classmethod
    def here(cls) -> Quiet:
        import asyncio

        return cls(asyncio.get_running_loop(), threading.current_thread())

    @classmethod
    def if_running(cls) -> Quiet | None:
        """``here()`` when made on a running event loop (a notebook cell), else None."""
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return cls.here()

    @staticmethod
    def _chain(thread: threading.Thread) -> list[Any]:
        frame = sys._current_frames().get(thread.ident or -1)
        chain = []
        while frame is not None:
            chain.append(frame)
            frame = frame.f_back
        return chain

    def _loop_idle(self) -> bool:
        chain = self._chain(self.loop_thread)
        top = chain[0].f_code if chain else None
        in_select = top is not None and (
            top.co_name == "select" and top.co_filename.endswith("selectors.py")
        )
        if not in_select:
            return False
        try:
            if len(self.loop._ready) or any(not h.cancelled() for h in list(self.loop._scheduled)):
                return False
        except Exception:
            return False
        return True

    def _idle_worker(self, thread: threading.Thread) -> bool:
        chain = self._chain(thread)
        for i, frame in enumerate(chain):
            if frame.f_code.co_name == "run" and f"anyio{_sep()}" in frame.f_code.co_filename:
                callee = chain[i - 1].f_code if i > 0 else None
                waiting = callee is not None and (
                    callee.co_name == "get" and callee.co_filename.endswith("queue.py")
                )
                # Idle only with nothing in its queue: a call handed over but not yet
                # taken is work about to start.
                work = getattr(frame.f_locals.get("self"), "queue", None)
                return waiting and work is not None and work.empty()
        return False

    def _waits_for_a_lock(self, thread: threading.Thread) -> bool:
        """The learner's code is blocked at ``with lock:`` on a taken lock: it cannot start.

        Only the learner's own ``with``: a library's internal lock is taken for an
        instant, and a thread caught there is about to go on.
        """
        chain = self._chain(thread)
        return (
            bool(chain)
            and not chain[0].f_code.co_filename.startswith(_LIBRARY_DIRS)
            and _entering_a_taken_lock(chain[0])
        )

    def settled(self, busy: set[int]) -> bool:
        if not self._loop_idle():
            return False
        for thread in threading.enumerate():
            if thread.ident in self.old or thread is self.loop_thread or not thread.is_alive():
                continue
            if thread.ident in busy or self._idle_worker(thread):
                continue
            if not self._waits_for_a_lock(thread):
                return False
        return self._loop_idle()


def _sep() -> str:
    import os

    return os.sep


class ForcedRaceStore:
    """A shared number in a store with ``read()`` and ``write(value)``, like a database row.

    It is not thread-safe, and it makes sure that shows: each ``read`` and ``write``
    waits until another thread has read too, or until nothing else can start (``quiet``;
    a thread stopped at ``with lock:`` on a lock taken counts as unable to start), or, at
    worst, for a fallback. So two updates that no shared lock keeps apart always
    interleave and one is lost, while updates under one shared lock never wait for a
    clock.
    """

    def __init__(self, start: int = 0, log: EventLog | None = None, quiet: Quiet | None = None):
        self.value = start
        self.log = log
        self.quiet = quiet if quiet is not None else Quiet.if_running()
        self.fallback = GATE_FALLBACK
        self.reads: list[tuple[int, int]] = []  # (thread, value read)
        self.writes: list[tuple[int, int]] = []
        self.unprotected = 0
        self.fell_back = False
        self._cond = threading.Condition()
        self._inside: set[int] = set()
        self._names: dict[int, str] = {}

    def _hold(self) -> None:
        """Wait until another thread has read as well, or until nobody else can come."""
        me = threading.get_ident()
        deadline = time.monotonic() + self.fallback
        with self._cond:
            self.unprotected += 1
            self._inside.add(me)
            try:
                while not self.fell_back:
                    if any(t != me for t, _ in self.reads):
                        return  # another thread has read the same row: the race is on
                    if self.quiet is not None and self.quiet.settled(self._inside):
                        return  # nobody else can come before this call ends
                    if time.monotonic() > deadline:
                        self.fell_back = True
                        return
                    self._cond.wait(0.001)  # the facts are re-checked; time only bounds a hang
            finally:
                self._inside.discard(me)

    def _who(self) -> str:
        me = threading.get_ident()
        with self._cond:
            name = self._names.setdefault(me, f"thread {len(self._names) + 1}")
        return name

    def read(self) -> int:
        """The number in the store (a blocking call)."""
        time.sleep(0)  # a real store waits for its disk or its server here
        with self._cond:
            value = self.value
            self.reads.append((threading.get_ident(), value))
            self._cond.notify_all()
        if self.log is not None:
            self.log.mark(f"read {value}", who=self._who())
        self._hold()  # the value is read: others may read it too
        return value

    def write(self, value: int) -> None:
        """Store ``value`` (a blocking call)."""
        time.sleep(0)
        self._hold()  # before writing: let the others read first
        with self._cond:
            self.value = value
            self.writes.append((threading.get_ident(), value))
            self._cond.notify_all()
        if self.log is not None:
            self.log.mark(f"write {value}", who=self._who())


# --------------------------------------------------------------------------- the shop


class Tally:
    """The shop's order count, kept in a blocking store: ``read()`` and ``write(n)``.

    Like a database row without transactions, it is not thread-safe: between a
    ``read`` and the ``write`` that follows, another thread may read the same number.
    """

    def __init__(self, start: int = 0, delay: float = 0.005) -> None:
        self.value = start
        self.delay = delay

    def read(self) -> int:
        """The current count; blocks while the store answers."""
        time.sleep(self.delay)
        return self.value

    def write(self, value: int) -> None:
        """Store a new count; blocks while the store writes."""
        time.sleep(self.delay)
        self.value = value


class StampsSDK:
    """The loyalty-card vendor's legacy SDK: ``sdk.stamps(customer)`` blocks, and is slow.

    The vendor allows only a few calls at once from each shop.
    """

    def __init__(self, delay: float = 0.1, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()
        self.in_flight = InFlightCounter()

    def stamps(self, customer: str) -> int:
        """The number of stamps on ``customer``'s card; blocks for ``delay`` seconds."""
        with self.in_flight, self.log.span(f"stamps {customer}", who="stamps SDK"):
            time.sleep(self.delay)
        return len(customer) % 10


class AuditBook:
    """The shop's audit writer, blocking: ``audit(number)`` writes one line for an order."""

    def __init__(self, delay: float = 0.02, log: EventLog | None = None) -> None:
        self.delay = delay
        self.log = log or EventLog()
        self.lines: list[str] = []

    def __call__(self, number: int) -> None:
        with self.log.span(f"audit {number}", who="audit"):
            time.sleep(self.delay)
        self.lines.append(f"order {number}")


# --------------------------------------------------------------------------- probes


class ProbeTally(ForcedRaceStore):
    """The test's tally: a :class:`ForcedRaceStore` that starts at a number made up afresh."""

    def __init__(self, quiet: Quiet | None = None) -> None:
        super().__init__(start=secrets.randbelow(900) + 100, quiet=quiet)
        self.start = self.value


class ProbeStamps:
    """A blocking stamps SDK that holds each call until nothing more can start.

    While held, calls are counted: ``peak`` is then exactly the number of calls the app
    lets run at once. Records each call's thread; answers are fresh secrets.
    """

    def __init__(self, customers: list[str], quiet: Quiet | None = None) -> None:
        self.answers = {c: secrets.randbelow(90) + 10 for c in customers}
        self.quiet = quiet
        self.fallback = GATE_FALLBACK
        self.calls: list[tuple[str, int]] = []
        self.current = 0
        self.peak = 0
        self.fell_back = False
        self.released = 0
        # The default thread limiter of the loop that serves the app (set by the test),
        # and how many of its tokens were borrowed while the calls were held.
        self.default_limiter: Any = None
        self.borrowed_when_held: float | None = None
        self._cond = threading.Condition()
        self._inside: set[int] = set()

    def stamps(self, customer: str) -> int:
        time.sleep(0)  # a real SDK blocks here
        me = threading.get_ident()
        with self._cond:
            self.calls.append((customer, me))
            self.current += 1
            self.peak = max(self.peak, self.current)
            self._inside.add(me)
            self._cond.notify_all()
        deadline = time.monotonic() + self.fallback
        with self._cond:
            try:
                while self.quiet is not None and not (self.fell_back or self.released):
                    if self.quiet is not None and self.quiet.settled(self._inside):
                        if self.default_limiter is not None:
                            self.borrowed_when_held = self.default_limiter.borrowed_tokens
                        break
                    if time.monotonic() > deadline:
                        self.fell_back = True
                        if self.default_limiter is not None:
                            self.borrowed_when_held = self.default_limiter.borrowed_tokens
                        break
                    self._cond.wait(0.001)
                self.released += 1
            finally:
                self._inside.discard(me)
                self.current -= 1
                self._cond.notify_all()
        return self.answers.get(customer, 0)


class ProbeAudit:
    """A blocking audit writer that marks in ``log`` when each call starts, and on which thread."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.calls: list[tuple[Any, int, str]] = []

    def __call__(self, number: int) -> None:
        self.log.mark(f"audit {number}", who="audit")
        self.calls.append((number, threading.get_ident(), threading.current_thread().name))
        time.sleep(0)  # a real audit writes to its disk here
