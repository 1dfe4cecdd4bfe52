"""Probes, a hang-proof runner and learner-facing checks for the course's tests.

Hidden tests measure concurrency by instrumentation, never with a stopwatch:

* :class:`InFlightCounter` counts how many calls are running at once (and the peak);
* :class:`AsyncGate` and :class:`ThreadGate` are barriers that open only when enough
  callers are waiting together, so a correct answer never waits on a clock, while a
  sequential one is released by a fallback and recorded as "no overlap";
* :class:`Heartbeat` ticks on the event loop and proves the loop stayed free;
* :class:`EventLog` records who did what, on which thread and process, in order;
* :class:`LoopBlockWatch` stops learner code at the first blocking call it makes on the
  event loop's thread (``time.sleep``, ``Event.wait``, ``Future.result``, a blocking
  socket, ...), so blocking the loop is a fact of the code, never a matter of timing;
* :func:`run_async` and :func:`run_blocking` run a learner's code on a daemon thread
  with a time limit, so a busy loop or an ``await`` that never returns fails one test
  within seconds instead of hanging the notebook.

Verdicts never depend on which of two clocks fires first. A correct answer never
reaches a fallback; a blocking call is stopped before it waits at all, whatever its
duration; the hang limit is far above any wait an exercise allows.

The module imports nothing from the rest of the package: :func:`fresh` loads a new
copy of it straight from disk, so a test cell is not fooled by a probe that an
earlier cell replaced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import gc
import importlib.util
import inspect
import math
import os
import reprlib
import select
import socket
import sys
import sysconfig
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import anyio
import sniffio

# Hang guards. These limits never decide whether an answer is right: a correct answer
# finishes in milliseconds, and only a wrong one (sequential, hung, busy) ever reaches them.
# The hang limit is well above any wait an exercise lets a correct answer make (up to 5 s),
# so "finished" and "did not finish" never race.
HANG_LIMIT = 10.0
GATE_FALLBACK = 2.0


# --------------------------------------------------------------------------- checks


class ExerciseFailure(AssertionError):
    """A test failed; the message speaks to the learner (expected, happened, hint)."""


def _show_failures_plainly() -> None:
    """In IPython, show an ExerciseFailure as its message alone, without a traceback.

    The traceback would only show the course's own helper code, which helps no learner.
    Other exceptions keep IPython's usual display.
    """
    if "IPython" not in sys.modules:
        return  # not in a notebook (a worker process, a script): nothing to set up
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "_showtraceback"):
        return
    if getattr(shell, "_concurrent_burgers_plain_failures", False):
        return  # already registered (fresh() loads this module again)

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None):
        if etype.__name__ != "ExerciseFailure":
            return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        shell._showtraceback(etype, value, [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"])
        return None

    shell.set_custom_exc((AssertionError,), handler)
    shell._concurrent_burgers_plain_failures = True


_show_failures_plainly()


HINTS_LINE = "  More help: "


def fail(
    summary: str, *, expected: str, happened: str, hint: str = "", topic: str = ""
) -> NoReturn:
    """Raise :class:`ExerciseFailure` with the course's three-part message.

    ``topic`` names the misconception this failure detected (a key of the assignment's
    hint ladders in ``autograder/exercises.toml``); ``autograder check --hint`` then
    climbs that ladder. Without it, the ladder of the failing test's exercise is used.
    """
    __tracebackhide__ = True
    lines = [summary, f"  Expected: {expected}", f"  Happened: {happened}"]
    if hint:
        lines.append(f"  Hint: {hint}")
    if topic:
        lines.append(f"{HINTS_LINE}hints on this: make check NB=... ARGS=--hint (topic: {topic})")
    raise ExerciseFailure("\n".join(lines))


def topic_of(message: str) -> str:
    """The misconception a failure message names (see :func:`fail`), or ""."""
    for line in message.splitlines():
        if line.startswith(HINTS_LINE) and "(topic: " in line:
            return line.rsplit("(topic: ", 1)[1].rstrip(")")
    return ""


def expect(
    condition: bool,
    summary: str,
    *,
    expected: str,
    happened: str,
    hint: str = "",
    topic: str = "",
) -> None:
    """Fail with the course's message unless ``condition`` is exactly ``True``."""
    __tracebackhide__ = True
    if condition is not True:
        fail(summary, expected=expected, happened=happened, hint=hint, topic=topic)


def plural(count: int, one: str, many: str | None = None) -> str:
    """``"1 order"``, ``"3 orders"``: a count with its noun in the right number."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


_PLAIN_SCALARS = (str, int, float, bool, bytes, type(None))
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 8


def strict_equal(actual: object, expected: object) -> bool:
    """Compare with ``==`` only after checking exact built-in types, recursively.

    An object with a forged ``__eq__`` (or a subclass of ``str`` or ``list``) never
    matches: ``type(...) is`` cannot be overridden by the value being checked.
    """
    if type(actual) is not type(expected):
        return False
    if type(expected) in _PLAIN_SCALARS:
        if type(expected) is float and math.isnan(expected):
            return math.isnan(actual)  # type: ignore[arg-type]
        return expected == actual
    if type(expected) in (list, tuple):
        return len(actual) == len(expected) and all(  # type: ignore[arg-type]
            strict_equal(a, e)
            for a, e in zip(actual, expected, strict=False)  # type: ignore[call-overload]
        )
    if type(expected) is dict:
        keys = list(actual)  # type: ignore[call-overload]
        return (
            all(type(k) in _PLAIN_SCALARS for k in keys)
            and len(keys) == len(expected)
            and all(k in expected and strict_equal(actual[k], expected[k]) for k in keys)  # type: ignore[index]
        )
    raise TypeError(f"strict_equal does not compare {type(expected).__name__} values")


def describe(value: object) -> str:
    """A short, safe description of a learner's value for a failure message."""
    if awaitable_items(value):
        kinds = sorted({type(v).__name__ for v in value})  # type: ignore[attr-defined]
        return f"a {type(value).__name__} of {' and '.join(kinds)} objects, not their results"
    if type(value) in _PLAIN_SCALARS or type(value) in (list, tuple, dict):
        try:
            return _repr.repr(value)
        except Exception:
            pass
    if inspect.iscoroutine(value):
        return f"a coroutine object ({value.__qualname__}) that was never awaited"
    return f"an object of type {type(value).__name__}"


def awaitable_items(values: object) -> bool:
    """True when ``values`` (a list or tuple) holds coroutines, tasks or futures."""
    return type(values) in (list, tuple) and any(
        inspect.isawaitable(v) or hasattr(v, "add_done_callback")
        for v in values  # type: ignore[attr-defined]
    )


# --------------------------------------------------------------------------- probes


class InFlightCounter:
    """Counts calls in progress: ``current``, ``peak`` and ``total`` so far.

    Use it as ``with counter:`` or ``async with counter:``; it is thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.total = 0

    def __enter__(self) -> InFlightCounter:
        with self._lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1

    async def __aenter__(self) -> InFlightCounter:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class AsyncGate:
    """An async barrier for ``parties`` tasks, with a fallback that never hangs.

    ``await gate.arrive()`` returns when ``parties`` tasks have arrived: then
    ``gate.met`` is True. A sequential caller can never bring them together; after
    ``fallback`` seconds the gate breaks, releases everyone at once and ``met`` stays
    False. Works on asyncio and Trio (through AnyIO).
    """

    def __init__(self, parties: int, fallback: float = GATE_FALLBACK) -> None:
        self.parties = parties
        self.fallback = fallback
        self.arrived = 0
        self.met = False
        self.broken = False
        self._event: anyio.Event | None = None

    async def arrive(self) -> bool:
        if self._event is None:
            self._event = anyio.Event()
        self.arrived += 1
        if self.arrived >= self.parties and not self.broken:
            self.met = True
            self._event.set()
        with anyio.move_on_after(self.fallback):
            await self._event.wait()
        if not self._event.is_set():
            self.broken = True
            self._event.set()
        return self.met


class AsyncSequencer:
    """Makes tasks finish in a chosen order, if and only if they run concurrently.

    ``async with seq.turn(key):`` waits until every key listed before ``key`` in
    ``order`` has finished its turn. Concurrent callers therefore finish in ``order``
    whatever order they started in. A caller that runs the keys one at a time would
    wait forever; after ``fallback`` seconds the sequencer breaks and lets everyone
    through at once (``broken`` is then True), so nothing hangs.
    """

    def __init__(self, order: list[Any], fallback: float = GATE_FALLBACK) -> None:
        self.order = list(order)
        self.fallback = fallback
        self.finished: list[Any] = []
        self.broken = False
        self._changed: anyio.Event | None = None

    def _ready(self, key: Any) -> bool:
        earlier = self.order[: self.order.index(key)]
        return self.broken or all(k in self.finished for k in earlier)

    def turn(self, key: Any) -> _Turn:
        return _Turn(self, key)

    async def _wait(self, key: Any) -> None:
        with anyio.move_on_after(self.fallback) as scope:
            while not self._ready(key):
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
        if scope.cancelled_caught:
            self.broken = True
            self._wake()

    def _done(self, key: Any) -> None:
        self.finished.append(key)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class _Turn:
    def __init__(self, seq: AsyncSequencer, key: Any) -> None:
        self._seq, self._key = seq, key

    async def __aenter__(self) -> None:
        await self._seq._wait(self._key)

    async def __aexit__(self, *exc: object) -> None:
        self._seq._done(self._key)


class ThreadGate:
    """A thread barrier for ``parties`` threads that breaks after ``fallback`` seconds.

    ``gate.arrive()`` returns True when the threads met, False once it broke (then it
    stays broken and never blocks again).
    """

    def __init__(self, parties: int, fallback: float = GATE_FALLBACK) -> None:
        self.parties = parties
        self._barrier = threading.Barrier(parties, timeout=fallback)
        self._lock = threading.Lock()
        self.met = False
        self.broken = False

    def arrive(self) -> bool:
        if self.broken:
            return False
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            with self._lock:
                self.broken = True
            return False
        with self._lock:
            self.met = not self.broken
        return self.met


class Heartbeat:
    """A task that ticks on the event loop while the code under test runs.

    ``async with Heartbeat() as beat:`` starts it; ``beat.ticks`` counts the ticks.
    From a worker thread, ``beat.wait_for_ticks(n)`` returns True once the loop has
    ticked ``n`` more times, or False after a fallback: the loop was blocked.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.ticks = 0
        self._cond = threading.Condition()
        self._scope: anyio.CancelScope | None = None
        self._group: Any = None

    async def __aenter__(self) -> Heartbeat:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._beat)
        await anyio.sleep(0)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(*exc)

    async def _beat(self) -> None:
        while True:
            with self._cond:
                self.ticks += 1
                self._cond.notify_all()
            await anyio.sleep(self.interval)

    def wait_for_ticks(self, n: int = 3, fallback: float = GATE_FALLBACK) -> bool:
        with self._cond:
            target = self.ticks + n
            return self._cond.wait_for(lambda: self.ticks >= target, timeout=fallback)


@dataclass(frozen=True)
class Event:
    """One entry of an :class:`EventLog`: a span (start < end) or an instant (start == end)."""

    who: str
    what: str
    start: float
    end: float
    thread: str
    process: int


class EventLog:
    """A thread-safe record of who did what, when, on which thread and process.

    ``with log.span("cook", who="kitchen"):`` (or ``async with``) records a span;
    ``log.mark("order placed", who="you")`` records an instant. Times are seconds
    since the log was created.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self.events: list[Event] = []

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def record(self, who: str, what: str, start: float, end: float) -> Event:
        event = Event(who, what, start, end, threading.current_thread().name, os.getpid())
        with self._lock:
            self.events.append(event)
        return event

    def mark(self, what: str, who: str = "main") -> Event:
        t = self.now()
        return self.record(who, what, t, t)

    def span(self, what: str, who: str = "main") -> _Span:
        return _Span(self, who, what)

    def whats(self, who: str | None = None) -> list[str]:
        """The ``what`` of every event (of one ``who``, if given), in order of start."""
        with self._lock:
            events = sorted(self.events, key=lambda e: e.start)
        return [e.what for e in events if who is None or e.who == who]

    def table(self) -> str:
        """The log as aligned text, one event a line, in order of start."""
        with self._lock:
            events = sorted(self.events, key=lambda e: e.start)
        rows = [f"{'start':>7} {'end':>7}  {'who':<12} {'thread':<20} what"]
        for e in events:
            rows.append(f"{e.start:7.3f} {e.end:7.3f}  {e.who:<12} {e.thread:<20} {e.what}")
        return "\n".join(rows)

    def plot(self, title: str = "", **options: Any) -> Any:
        """Draw the log as a timeline chart (see :mod:`concurrent_burgers.timeline`)."""
        from concurrent_burgers.timeline import plot

        return plot(self, title=title, **options)


class _Span:
    def __init__(self, log: EventLog, who: str, what: str) -> None:
        self._log, self._who, self._what = log, who, what
        self._start = 0.0

    def __enter__(self) -> _Span:
        self._start = self._log.now()
        return self

    def __exit__(self, *exc: object) -> None:
        self._log.record(self._who, self._what, self._start, self._log.now())

    async def __aenter__(self) -> _Span:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def running_async_library() -> str | None:
    """``"asyncio"`` or ``"trio"`` when called on a thread that runs an event loop, else None."""
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


# --------------------------------------------------------------------------- blocking calls


class LoopBlocked(BaseException):
    """Raised into learner code at a blocking call on the event loop's thread.

    A ``BaseException``, so that a plain ``except Exception`` in the learner's code does
    not swallow it; the verdict comes from :attr:`LoopBlockWatch.blocked` in any case.
    """


@dataclass(frozen=True)
class BlockingCall:
    """A blocking call made on the event loop's thread: what was called, and from where."""

    call: str
    function: str
    line: int

    def describe(self) -> str:
        return f"`{self.function}` called {self.call} (line {self.line} of its cell)"


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.add(str(Path(__file__).resolve().parent))  # the course's props block like a library
    return tuple(sorted(os.path.join(d, "") for d in dirs))


_LIBRARY_DIRS = _library_dirs()
# Code that may wait briefly on the loop's thread by design: the event loops themselves
# (their selector), the kernel's output streams, starting a thread, and handing work to
# an executor (submit queues it and may start workers; a forked worker inherits the
# watch, and its own waits are under submit too).
_FRAMEWORK_PARTS = (
    *(f"{os.sep}{part}{os.sep}" for part in ("asyncio", "anyio", "trio", "sniffio", "outcome")),
    *(f"{os.sep}{part}{os.sep}" for part in ("ipykernel", "IPython")),
    f"{os.sep}nest_asyncio.py",
)
_ALLOWED_CODE = {
    threading.Thread.start.__code__,
    concurrent.futures.ProcessPoolExecutor.submit.__code__,
    concurrent.futures.ThreadPoolExecutor.submit.__code__,
}
# Condition.wait is where every threading wait blocks. Event.wait counts even when the
# event happens to be set already: whether it was is a race with another thread, and
# the verdict must not depend on it.
_WAIT_CODES = {threading.Condition.wait.__code__, threading.Event.wait.__code__}
_BLOCKING_FUNCTIONS = {
    "time.sleep",
    "select.select",
    "posix.system",
    "posix.wait",
    "posix.waitpid",
    "posix.read",
    "builtins.input",
    "_socket.getaddrinfo",
    "_socket.gethostbyname",
}
_SOCKET_WAITS = {"recv", "recv_into", "recvfrom", "accept", "connect", "send", "sendall"}
_POLLERS = (type(select.poll()), *([select.epoll] if hasattr(select, "epoll") else []))
_LOCK_TYPE = type(threading.Lock())
_TAKEN_LOCK = "Lock.acquire on a lock that is taken"
# Libraries probe taken locks without waiting (acquire(False)); only these callers wait.
_LOCK_WAITERS = {threading.Thread._wait_for_tstate_lock.__code__}


def _blocking_c_call(function: Any) -> str | None:
    """The name of a C function that would block the calling thread, else None."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(owner, ModuleType):
        qualified = f"{owner.__name__}.{name}"
        return qualified.replace("posix.", "os.") if qualified in _BLOCKING_FUNCTIONS else None
    if type(owner) is _LOCK_TYPE and name == "acquire" and owner.locked():
        return _TAKEN_LOCK
    if isinstance(owner, socket.socket) and name in _SOCKET_WAITS and owner.gettimeout() != 0:
        return f"socket.{name} on a blocking socket"
    if isinstance(owner, _POLLERS) and name == "poll":
        return f"{type(owner).__name__}.poll"
    return None


def _public_name(frame: Any) -> str:
    """How the learner would write the library call that ``frame`` runs."""
    module = frame.f_globals.get("__name__", "").split("._")[0].replace("posix", "os")
    name = frame.f_code.co_qualname
    if name.endswith(".__exit__"):
        owner = type(frame.f_locals.get("self")).__name__
        return f"the end of a `with {owner}(...)` block, which waits for its workers,"
    return f"{module}.{name}"


def _learner_frame(frame: Any) -> tuple[Any, Any] | None:
    """(the learner's frame, the library frame it called) that led to a blocking call.

    None when the nearest responsible code is an event loop or another framework
    that waits by design (see ``_FRAMEWORK_PARTS``).
    """
    called = None
    while frame is not None:
        code = frame.f_code
        if code in _ALLOWED_CODE:
            return None
        filename = code.co_filename
        if any(part in filename for part in _FRAMEWORK_PARTS):
            return None
        if not filename.startswith(_LIBRARY_DIRS):
            return frame, called
        called = frame
        frame = frame.f_back
    return None


class LoopBlockWatch:
    """Stops learner code at the first blocking call on the event loop's thread.

    Installed with ``sys.setprofile`` on the thread that runs the loop (by
    :func:`run_async`), it sees every call made there. A call that would block the
    thread (``time.sleep``, a ``threading`` wait such as ``Event.wait``, ``Queue.get``,
    ``Future.result`` or ``Thread.join``, a blocking socket, ``select``, ``os.system``)
    and that the learner's code made, directly or through a library, is recorded in
    :attr:`blocked` and never performed: :class:`LoopBlocked` is raised in its place.
    So a blocking answer fails the same way whether it would have blocked for a
    millisecond or for a minute. Waits inside the event loop itself, AnyIO, Trio and
    the kernel's output streams are theirs by design and let through.
    """

    def __init__(self) -> None:
        self.blocked: BlockingCall | None = None
        self.switched_off = False

    def profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            try:
                call = _blocking_c_call(arg)
            except Exception:  # an odd object's attributes; never break the learner's call
                return
            if call == _TAKEN_LOCK and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
                if frame.f_code not in _LOCK_WAITERS:
                    return
            if call is None:
                return
            start = frame
        elif event == "call" and frame.f_code in _WAIT_CODES:
            timeout = frame.f_locals.get("timeout")
            if timeout is not None and timeout <= 0:
                return  # a poll, not a wait (Semaphore.acquire(timeout=0) does this)
            call, start = "", frame
        else:
            return
        found = _learner_frame(start)
        if found is None or self.blocked is not None:
            return
        learner, called = found
        if called is not None and (not call or called is not start):
            call = _public_name(called)
        self.blocked = BlockingCall(call, learner.f_code.co_qualname, learner.f_lineno)
        raise LoopBlocked(f"{self.blocked.describe()} on the event loop's thread")

    def run(self, target: Callable[[], Any]) -> Any:
        """Call ``target()`` on this thread with the watch on."""
        hook = self.profile  # one bound method: each attribute access makes a new one
        sys.setprofile(hook)
        try:
            return target()
        finally:
            # A profile function that raised is switched off by Python itself; one that
            # is gone without having raised was switched off by the learner's code.
            self.switched_off = self.blocked is None and sys.getprofile() is not hook
            sys.setprofile(None)


# --------------------------------------------------------------------------- runner


@dataclass
class Outcome:
    """What happened when the learner's code ran under :func:`run_async` or :func:`run_blocking`."""

    what: str
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    warnings: list[str] = field(default_factory=list)
    blocked: BlockingCall | None = None
    watch_switched_off: bool = False
    # When the run did not finish: what its thread was doing at the time limit.
    stuck_in: str = ""
    # Whether the code ran on an event loop (run_async) or as a plain blocking call.
    on_loop: bool = True
    # "Task exception was never retrieved" reports of the run's loop (see run_async).
    unretrieved: list[str] = field(default_factory=list)

    @property
    def never_awaited(self) -> list[str]:
        """Messages of "coroutine ... was never awaited" warnings raised during the run."""
        return [w for w in self.warnings if "was never awaited" in w]

    def check_loop_free(self) -> None:
        """Fail if the learner's code blocked the event loop's thread (or hid from the watch)."""
        __tracebackhide__ = True
        if self.blocked is not None:
            fail(
                f"{self.what} blocked the event loop.",
                expected="every wait inside async code to be an `await`, so that the loop "
                "runs other tasks meanwhile",
                happened=f"{self.blocked.describe()} on the event loop's thread; the test "
                "stopped it there, since while it blocks, no other task can run",
                hint="a blocking call inside async def freezes every task; await the async "
                "version instead, or move blocking work to a worker thread.",
                topic="blocks-the-loop",
            )
        if self.watch_switched_off:
            fail(
                f"{self.what} switched off the test's watch on the event loop.",
                expected="your code to leave sys.setprofile alone",
                happened="the profile function that watches for blocking calls was removed",
            )

    def fail_timed_out(self) -> NoReturn:
        """Say why the code did not finish: busy on the loop, busy elsewhere, or waiting."""
        __tracebackhide__ = True
        if self.stuck_in and self.on_loop:
            fail(
                f"{self.what} never gave the event loop a turn.",
                expected="every wait inside async code to be an `await`",
                happened=f"after {HANG_LIMIT:.0f} seconds it was still running "
                f"`{self.stuck_in}` without ever awaiting: a busy loop holds the "
                "loop's thread, and no other task can run",
                hint="inside a loop that waits for something, await on every turn "
                "(the thing you wait for can only happen while you await).",
                topic="busy-wait",
            )
        if self.stuck_in:
            fail(
                f"{self.what} did not finish.",
                expected=f"{self.what} to finish in well under {HANG_LIMIT:.0f} seconds",
                happened=f"after {HANG_LIMIT:.0f} seconds it was still running "
                f"`{self.stuck_in}`: a loop that never ends, or far more work than the "
                "test asked for",
                hint="check the condition that ends each loop in your code, and that the "
                "work done is only what the exercise asks.",
            )
        waited = "awaited" if self.on_loop else "waited for"
        fail(
            f"{self.what} did not finish.",
            expected=f"{self.what} to finish in well under {HANG_LIMIT:.0f} seconds",
            happened=f"it was still waiting when the time limit ran out: something it "
            f"{waited} never happened",
            hint="look for a wait on something that nobody will ever finish or set.",
            topic="never-returns",
        )

    def result(self) -> Any:
        """The value, or a learner-facing failure if the code hung, blocked or raised."""
        __tracebackhide__ = True
        self.check_loop_free()
        if self.timed_out:
            self.fail_timed_out()
        if self.error is not None:
            err = self.error
            while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
                err = err.exceptions[0]  # task groups wrap errors; show the one that matters
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            if isinstance(err, NameError) and getattr(err, "name", None):
                fail(
                    f"`{err.name}` is not defined, so {self.what} could not run.",
                    expected=f"`{err.name}` defined (by your answer cell, under exactly that "
                    "name, or imported) before it is used",
                    happened=f"it raised {detail}",
                    hint="check the spelling, and that the cell defining it has run.",
                )
            if isinstance(err, NotImplementedError):
                fail(
                    f"{self.what} is not written yet.",
                    expected="your solution in place of `raise NotImplementedError()`",
                    happened=f"it raised {detail}",
                )
            fail(
                f"{self.what} raised an exception.",
                expected=f"{self.what} to finish without an error",
                happened=f"it raised {detail}",
                hint="run your code in a cell of its own to see the full traceback.",
            )
        return self.value


def _close_unawaited(outcome: Outcome) -> None:
    """Close coroutines the learner returned instead of awaiting, and note them.

    Left open, each would print "never awaited" on stderr whenever it is collected,
    possibly during a later test cell, and stderr fails a cell.
    """
    values = outcome.value if type(outcome.value) in (list, tuple) else [outcome.value]
    for value in values:
        if inspect.iscoroutine(value):
            outcome.warnings.append(f"coroutine '{value.__qualname__}' was never awaited")
            value.close()


class _Stopped(BaseException):
    """Raised into a runner thread that is still busy at the time limit."""


def _stuck_in(thread: threading.Thread) -> str:
    """The learner's function a thread is executing right now, or "" if it is idle.

    Idle means waiting inside a library (an event loop's selector, a lock): the code
    awaits something that never comes. Busy means running learner code: a loop that
    never awaits.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        return ""
    return frame.f_code.co_qualname


def _stop(thread: threading.Thread) -> None:
    """Ask a busy thread to stop (at its next bytecode), so it stops eating the CPU."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_Stopped)
    )


def _run_on_daemon_thread(
    outcome: Outcome,
    target: Callable[[], Any],
    timeout: float,
    watch: LoopBlockWatch | None = None,
) -> Outcome:
    done = threading.Event()

    def runner() -> None:
        try:
            outcome.value = target() if watch is None else watch.run(target)
            _close_unawaited(outcome)
        except BaseException as exc:  # the learner's code may raise anything, SystemExit too
            outcome.error = exc
        finally:
            done.set()

    thread = threading.Thread(target=runner, name=f"test-{outcome.what}", daemon=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread.start()
        if not done.wait(timeout):
            outcome.timed_out = True
            outcome.stuck_in = _stuck_in(thread)
            if outcome.stuck_in:
                _stop(thread)
                done.wait(0.5)
        gc.collect()  # finalise never-awaited coroutines now, while warnings are recorded
    outcome.warnings += [str(w.message) for w in caught]
    if watch is not None:
        outcome.blocked = watch.blocked
        # Stopping a busy thread can land inside the watch itself, which switches it off.
        outcome.watch_switched_off = watch.switched_off and not outcome.timed_out
    return outcome


def run_async(
    async_fn: Callable[..., Any],
    *args: Any,
    what: str = "your code",
    backend: str = "asyncio",
    timeout: float = HANG_LIMIT,
    allow_blocking: bool = False,
) -> Outcome:
    """Run ``async_fn(*args)`` on a new event loop in a daemon thread, within ``timeout``.

    The kernel's own loop is untouched; a hang fails the calling test and leaves the
    thread behind, so the notebook's later cells still run. The first blocking call the
    learner's code makes on the loop's thread is stopped (see :class:`LoopBlockWatch`),
    and the test fails at once with a message that names it, before anything else is
    checked. ``allow_blocking`` turns that off, for exercises whose contract is to
    block (a synchronous ``run_sync`` called from a coroutine, say).
    """
    outcome = Outcome(what)
    options = {"loop_factory": lambda: _loop_noting_unretrieved(outcome)}
    outcome = _run_on_daemon_thread(
        outcome,
        lambda: anyio.run(
            async_fn,
            *args,
            backend=backend,
            backend_options=options if backend == "asyncio" else None,
        ),
        timeout,
        None if allow_blocking else LoopBlockWatch(),
    )
    __tracebackhide__ = True
    outcome.check_loop_free()
    return outcome


def _loop_noting_unretrieved(outcome: Outcome) -> asyncio.AbstractEventLoop:
    """A new loop whose "exception was never retrieved" reports go to ``outcome``.

    A task that failed unobserved reports itself only when it is garbage collected, and
    whether it was observed can hang on the order of a set (``asyncio.wait``'s ``done``):
    left on stderr, that report would fail a test on some runs and not on others.
    """
    loop = asyncio.new_event_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = context.get("message", "")
        if message.endswith("exception was never retrieved"):
            outcome.unretrieved.append(f"{message}: {context.get('exception')!r}")
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return loop


def run_blocking(
    fn: Callable[..., Any], *args: Any, what: str = "your code", timeout: float = HANG_LIMIT
) -> Outcome:
    """Run the blocking call ``fn(*args)`` in a daemon thread, within ``timeout``."""
    return _run_on_daemon_thread(Outcome(what, on_loop=False), lambda: fn(*args), timeout)


def fresh(module: str = "concurrent_burgers.testing") -> ModuleType:
    """A new copy of a course module (this one by default), loaded from its file.

    The copy is unaffected by anything an earlier cell patched on the imported module.
    """
    short = module.rsplit(".", 1)[-1]
    name = f"concurrent_burgers._fresh_{short}"
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{short}.py"))
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    sys.modules[name] = copy  # dataclasses look their module up while the class is built
    spec.loader.exec_module(copy)
    return copy
