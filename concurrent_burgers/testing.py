"""Probes, a hang-proof runner and learner-facing checks for the course's tests.

Hidden tests measure concurrency by instrumentation, never with a stopwatch:

* :class:`InFlightCounter` counts how many calls are running at once (and the peak);
* :class:`AsyncGate` and :class:`ThreadGate` are barriers that open only when enough
  callers are waiting together, so a correct answer never waits on a clock, while a
  sequential one is released by a fallback and recorded as "no overlap";
* :class:`Heartbeat` ticks on the event loop and proves the loop stayed free;
* :class:`EventLog` records who did what, on which thread and process, in order;
* :class:`BlockingSleepSpy` notices ``time.sleep`` called on a running event loop;
* :func:`run_async` and :func:`run_blocking` run a learner's code on a daemon thread
  with a time limit, so a busy loop or an ``await`` that never returns fails one test
  within seconds instead of hanging the notebook.

The module imports nothing from the rest of the package: :func:`fresh` loads a new
copy of it straight from disk, so a test cell is not fooled by a probe that an
earlier cell replaced.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import math
import os
import reprlib
import sys
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
HANG_LIMIT = 5.0
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


def fail(summary: str, *, expected: str, happened: str, hint: str = "") -> NoReturn:
    """Raise :class:`ExerciseFailure` with the course's three-part message."""
    __tracebackhide__ = True
    lines = [summary, f"  Expected: {expected}", f"  Happened: {happened}"]
    if hint:
        lines.append(f"  Hint: {hint}")
    raise ExerciseFailure("\n".join(lines))


def expect(condition: bool, summary: str, *, expected: str, happened: str, hint: str = "") -> None:
    """Fail with the course's message unless ``condition`` is exactly ``True``."""
    __tracebackhide__ = True
    if condition is not True:
        fail(summary, expected=expected, happened=happened, hint=hint)


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


@dataclass
class BlockingSleepSpy:
    """Records every ``time.sleep`` made while an event loop runs on the calling thread.

    ``with BlockingSleepSpy() as spy:`` patches ``time.sleep`` for the duration;
    ``spy.calls`` lists the threads that blocked their loop.
    """

    calls: list[str] = field(default_factory=list)
    _original: Callable[[float], None] | None = None

    def __enter__(self) -> BlockingSleepSpy:
        original = self._original = time.sleep

        def spied_sleep(seconds: float) -> None:
            if running_async_library() is not None:
                self.calls.append(threading.current_thread().name)
            original(seconds)

        time.sleep = spied_sleep
        return self

    def __exit__(self, *exc: object) -> None:
        if self._original is not None:
            time.sleep = self._original


# --------------------------------------------------------------------------- runner


@dataclass
class Outcome:
    """What happened when the learner's code ran under :func:`run_async` or :func:`run_blocking`."""

    what: str
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def never_awaited(self) -> list[str]:
        """Messages of "coroutine ... was never awaited" warnings raised during the run."""
        return [w for w in self.warnings if "was never awaited" in w]

    def result(self) -> Any:
        """The value, or a learner-facing failure if the code hung or raised."""
        __tracebackhide__ = True
        if self.timed_out:
            fail(
                f"{self.what} did not finish.",
                expected=f"{self.what} to finish in well under {HANG_LIMIT:.0f} seconds",
                happened="it was still running when the time limit ran out",
                hint="look for an await that can never return, a loop that never awaits, "
                "or time.sleep inside async code (it freezes the event loop).",
            )
        if self.error is not None:
            err = self.error
            while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
                err = err.exceptions[0]  # task groups wrap errors; show the one that matters
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
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


def _run_on_daemon_thread(what: str, target: Callable[[], Any], timeout: float) -> Outcome:
    outcome = Outcome(what)
    done = threading.Event()

    def runner() -> None:
        try:
            outcome.value = target()
            _close_unawaited(outcome)
        except BaseException as exc:  # the learner's code may raise anything, SystemExit too
            outcome.error = exc
        finally:
            done.set()

    thread = threading.Thread(target=runner, name=f"test-{what}", daemon=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread.start()
        if not done.wait(timeout):
            outcome.timed_out = True
        gc.collect()  # finalise never-awaited coroutines now, while warnings are recorded
    outcome.warnings += [str(w.message) for w in caught]
    return outcome


def run_async(
    async_fn: Callable[..., Any],
    *args: Any,
    what: str = "your code",
    backend: str = "asyncio",
    timeout: float = HANG_LIMIT,
) -> Outcome:
    """Run ``async_fn(*args)`` on a new event loop in a daemon thread, within ``timeout``.

    The kernel's own loop is untouched; a hang fails the calling test and leaves the
    thread behind, so the notebook's later cells still run.
    """
    return _run_on_daemon_thread(what, lambda: anyio.run(async_fn, *args, backend=backend), timeout)


def run_blocking(
    fn: Callable[..., Any], *args: Any, what: str = "your code", timeout: float = HANG_LIMIT
) -> Outcome:
    """Run the blocking call ``fn(*args)`` in a daemon thread, within ``timeout``."""
    return _run_on_daemon_thread(what, lambda: fn(*args), timeout)


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
