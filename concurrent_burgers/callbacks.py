"""Props for notebook 04: a kitchen of coroutines, and a pager that calls back from a thread.

* :class:`Kitchen`: the burger pipeline's stages (``toast_bun``, ``grill_patty``,
  ``assemble``, ``ring_bell``). Each call returns a coroutine, and the kitchen writes
  down when it was *called*, when its body *started* (it was awaited or run as a task)
  and when it *finished*, on which thread and loop. A missing ``await`` shows up as a
  stage that was called but never started.
* :class:`Pager`: an old-style callback library, like the buzzer a burger shop hands
  you. ``pager.request(order, on_done, on_error)`` returns at once; later, on a thread
  of the pager's own, it calls ``on_done(message)`` or ``on_error(error)``.
* :class:`LoopWatch`: notices calls into a running asyncio loop made from another
  thread without ``call_soon_threadsafe``, the classic mistake when a callback resolves
  a future.
* :func:`on_fresh_loop`: runs a demonstration on a brand-new, quiet event loop in a
  helper thread, where nothing else wakes the loop up.

Hidden tests take these props from :func:`fresh`, a new copy loaded from disk, so that a
prop replaced or patched by an earlier cell cannot fool them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anyio

from concurrent_burgers.testing import EventLog
from concurrent_burgers.testing import fresh as testing_fresh

#: How long a ``when_parked`` pager waits for a loop that never parks. Far above any
#: learner's own timeout, so that the two never race; reached only by a loop that never
#: lets its tasks wait (a poll with ``sleep(0)``, a busy loop).
PARK_FALLBACK = 8.0

STAGES: tuple[str, ...] = ("toast_bun", "grill_patty", "assemble", "ring_bell")


# --------------------------------------------------------------------------- the kitchen


@dataclass
class StageCall:
    """One call of a kitchen stage.

    ``called``, ``started`` and ``finished`` are positions in the kitchen's own order of
    events (1, 2, 3, ...); ``started`` stays None for a coroutine nobody ran, and
    ``finished`` for one that did not run to the end. ``thread`` and ``loop`` say where
    the stage's body ran (``loop`` is the id of the running asyncio loop, if any).
    """

    stage: str
    args: tuple[Any, ...]
    called: int
    started: int | None = None
    finished: int | None = None
    thread: str | None = None
    thread_id: int | None = None
    loop: int | None = None


class Kitchen:
    """The kitchen behind the burger pipeline; every stage takes ``delay`` seconds.

    Each stage is called like a coroutine function: ``await kitchen.toast_bun(7)``
    returns ``"bun#7"``, ``await kitchen.grill_patty(7)`` returns ``"patty#7"``,
    ``await kitchen.assemble(bun, patty)`` returns ``"burger(bun#7, patty#7)"`` and
    ``await kitchen.ring_bell(7)`` tells customer 7 that the burger is ready (it returns
    None and adds 7 to ``kitchen.bells``).

    ``kitchen.calls`` records every call, ``kitchen.report()`` shows them as text and
    ``kitchen.log`` draws them (a diamond when a stage is called, a bar while it runs).
    The kitchen keeps the coroutines it hands out: :meth:`close_unawaited` closes the
    ones nobody awaited, quietly, and names them.
    """

    def __init__(
        self,
        delay: float = 0.1,
        *,
        bun: str = "bun",
        patty: str = "patty",
        log: EventLog | None = None,
    ) -> None:
        self.delay = delay
        self.bun = bun
        self.patty = patty
        self.log = log if log is not None else EventLog()
        self.calls: list[StageCall] = []
        self.bells: list[Any] = []
        self._order_of_events = itertools.count(1)
        self._lock = threading.Lock()
        # Strong references, so that an unawaited stage is never garbage collected (and
        # never warns on stderr) before close_unawaited() or __del__ closes it. The
        # coroutines do not refer back to the kitchen: no reference cycle.
        self._coroutines: list[Coroutine[Any, Any, Any]] = []

    # The four stages. Each returns a coroutine; nothing happens until it is awaited.

    def toast_bun(self, order: Any) -> Coroutine[Any, Any, str]:
        """Toast a bun for ``order``; awaiting it returns ``"bun#<order>"``."""
        bun = f"{self.bun}#{order}"
        return self._stage("toast_bun", (order,), lambda: bun, f"#{order}")

    def grill_patty(self, order: Any) -> Coroutine[Any, Any, str]:
        """Grill a patty for ``order``; awaiting it returns ``"patty#<order>"``."""
        patty = f"{self.patty}#{order}"
        return self._stage("grill_patty", (order,), lambda: patty, f"#{order}")

    def assemble(self, bun: str, patty: str) -> Coroutine[Any, Any, str]:
        """Put a toasted bun and a grilled patty together; returns ``"burger(bun, patty)"``."""

        def build() -> str:
            for part, value in (("bun", bun), ("patty", patty)):
                if type(value) is not str:
                    kind = "a coroutine" if inspect.iscoroutine(value) else type(value).__name__
                    raise TypeError(
                        f"assemble needs a {part} (a str such as '{part}#7') but got {kind}; "
                        "was an await forgotten?"
                    )
            return f"burger({bun}, {patty})"

        return self._stage("assemble", (bun, patty), build, "")

    def ring_bell(self, order: Any) -> Coroutine[Any, Any, None]:
        """Ring the bell for ``order`` (the customer comes to fetch the burger)."""
        bells = self.bells
        return self._stage("ring_bell", (order,), lambda: bells.append(order), f"#{order}")

    # Records.

    def close_unawaited(self) -> list[str]:
        """Close every stage coroutine that was created but never started; return their names.

        Closing them is what stops Python's "coroutine ... was never awaited" warning.
        """
        names = []
        with self._lock:
            pairs = list(zip(self.calls, self._coroutines, strict=True))
        for call, coroutine in pairs:
            if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                coroutine.close()
                names.append(call.stage)
        return names

    def report(self) -> str:
        """Every call as a line of text: stage, arguments, called, started, finished."""
        rows = [f"{'stage':<12} {'arguments':<34} called started finished  thread"]
        for c in self.calls:
            args = ", ".join(_short(a) for a in c.args)
            rows.append(
                f"{c.stage:<12} {args:<34} {'yes':^6} {_yes(c.started):^7} "
                f"{_yes(c.finished):^8}  {c.thread or '-'}"
            )
        return "\n".join(rows)

    def __del__(self) -> None:
        try:
            self.close_unawaited()
        except Exception:
            pass

    def _stage(
        self, stage: str, args: tuple[Any, ...], work: Callable[[], Any], label: str
    ) -> Coroutine[Any, Any, Any]:
        with self._lock:
            call = StageCall(stage, args, called=next(self._order_of_events))
            coroutine = _perform(call, work, self._order_of_events, self.log, self.delay, label)
            coroutine.__name__ = stage
            coroutine.__qualname__ = f"Kitchen.{stage}"
            self.calls.append(call)
            self._coroutines.append(coroutine)
        self.log.mark("called", who=stage)
        return coroutine


async def _perform(
    call: StageCall,
    work: Callable[[], Any],
    order_of_events: itertools.count[int],
    log: EventLog,
    delay: float,
    label: str,
) -> Any:
    call.started = next(order_of_events)
    call.thread = threading.current_thread().name
    call.thread_id = threading.get_ident()
    call.loop = _running_asyncio_loop()
    with log.span(label or call.stage, who=call.stage):
        await anyio.sleep(delay)
        result = work()
    call.finished = next(order_of_events)
    return result


def _running_asyncio_loop() -> int | None:
    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return None


def _yes(position: int | None) -> str:
    return "no" if position is None else "yes"


def _short(value: Any) -> str:
    if inspect.iscoroutine(value):
        return f"<coroutine {value.__qualname__}>"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


# --------------------------------------------------------------------------- the pager


class PagerError(Exception):
    """The pager reports that an order cannot be made."""


@dataclass(frozen=True)
class Page:
    """One callback the pager made: for which order, which one, and on which thread."""

    order: Any
    callback: str  # "on_done" or "on_error"
    thread: str
    thread_id: int


class Pager:
    """A callback-style library: it calls you back later, from a thread of its own.

    ``pager.request(order, on_done, on_error)`` returns at once. After ``delay``
    seconds a new thread (named ``<name>-1``, ``<name>-2``, ...) calls
    ``on_done(message)`` with ``message.format(order=order)``, or, for an order listed
    in ``failing``, ``on_error(error)`` with a :class:`PagerError`. The callbacks
    therefore never run on the caller's thread, nor on its event loop.

    Whatever a callback raises is caught and written to ``callback_errors`` (it is
    never printed), except the ``RuntimeError`` of an event loop that has closed since
    the request: the caller did not wait for its page, which is the mistake the test
    reports, and whether the page came just before or just after the close is a matter
    of timing, so such a page is dropped quietly. ``pages`` records every callback made,
    ``errors_sent`` the errors handed to ``on_error``. ``before_page``, if given, is
    called on the pager's thread instead of sleeping ``delay`` seconds (tests use it to
    wait for a signal).

    ``when_parked=True`` (for tests) makes the pager call back, instead of after
    ``delay`` seconds, once the event loop that made the request has nothing left to
    run: every task on it is suspended on a future that is not done yet, the caller's
    coroutine waiting for the page included. That is the moment a callback that skips
    ``call_soon_threadsafe`` does its damage (it must wake a sleeping loop, and does
    not), so a test sees the mistake every time, not only when the page happens to come
    late. The loop's own thread checks this (the pager asks it through
    ``call_soon_threadsafe``); if the loop never gets round to it (its thread is
    blocked) the pager calls back anyway after ``fallback`` seconds.
    ``parked`` records, page by page, whether the loop was found waiting.
    """

    def __init__(
        self,
        delay: float = 0.05,
        *,
        message: str = "order {order} is ready",
        name: str = "pager",
        failing: Collection[Any] = (),
        before_page: Callable[[], Any] | None = None,
        when_parked: bool = False,
        fallback: float = PARK_FALLBACK,
        log: EventLog | None = None,
    ) -> None:
        self.delay = delay
        self.message = message
        self.name = name
        self.failing = set(failing)
        self.before_page = before_page
        self.when_parked = when_parked
        self.fallback = fallback
        self.log = log if log is not None else EventLog()
        self.requested_from: list[str] = []
        self.parked: list[bool] = []
        self.pages: list[Page] = []
        self.errors_sent: list[PagerError] = []
        self.callback_errors: list[str] = []
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count(1)

    def request(
        self, order: Any, on_done: Callable[[str], Any], on_error: Callable[[PagerError], Any]
    ) -> None:
        """Ask to be paged about ``order``; returns immediately, calls back later."""
        if not callable(on_done) or not callable(on_error):
            raise TypeError("request(order, on_done, on_error) needs two callables")
        self.requested_from.append(threading.current_thread().name)
        self.log.mark(f"request #{order}", who="customer")
        caller_loop = _running_asyncio_loop_object()
        thread = threading.Thread(
            target=self._deliver,
            args=(order, on_done, on_error, caller_loop),
            name=f"{self.name}-{next(self._numbers)}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float = 2.0) -> bool:
        """Wait until every callback has been made; False if one is still running."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _deliver(
        self,
        order: Any,
        on_done: Callable[[str], Any],
        on_error: Callable[[PagerError], Any],
        caller_loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        me = threading.current_thread()
        try:
            with self.log.span(f"#{order}", who=self.name):
                parked_loop = caller_loop if self.when_parked else None
                if self.before_page is not None:
                    self.before_page()
                elif parked_loop is None:
                    time.sleep(self.delay)
                if parked_loop is not None:
                    self.parked.append(_wait_until_parked(parked_loop, self.fallback))
            if order in self.failing:
                error = PagerError(f"order {order} cannot be made: the kitchen is out of buns")
                self.errors_sent.append(error)
                which, callback, argument = "on_error", on_error, error
            else:
                which, callback, argument = "on_done", on_done, self.message.format(order=order)
            self.pages.append(Page(order, which, me.name, me.ident or 0))
            self.log.mark(which, who=self.name)
            returned = callback(argument)
            if inspect.iscoroutine(returned):
                returned.close()
                raise TypeError(
                    f"{which} returned a coroutine: the pager calls it like a plain function "
                    "and cannot await anything"
                )
        except BaseException as exc:  # never let it reach threading.excepthook (stderr)
            if (
                isinstance(exc, RuntimeError)
                and caller_loop is not None
                and caller_loop.is_closed()
            ):
                return  # nobody waits for this page any more (see the class docstring)
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.callback_errors.append(f"{detail} (on thread {me.name})")


def _running_asyncio_loop_object() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_NO_SUCH_ATTRIBUTE = object()


def _all_tasks_parked(loop: asyncio.AbstractEventLoop) -> bool:
    """True if every task on ``loop`` is suspended on a future that is not done yet.

    Runs on the loop's thread, between callbacks, so no task is running. A task that
    yielded without a future (``asyncio.sleep(0)``), or whose future is done and which only
    waits for its turn, is not parked: the loop still has work to do for it.
    """
    for task in asyncio.all_tasks(loop):
        waiter = getattr(task, "_fut_waiter", _NO_SUCH_ATTRIBUTE)
        if waiter is _NO_SUCH_ATTRIBUTE:  # another Task implementation: assume it waits
            continue
        if waiter is None or waiter.done():
            return False
    return True


def _wait_until_parked(loop: asyncio.AbstractEventLoop, fallback: float) -> bool:
    """Block this (non-loop) thread until every task on ``loop`` is parked; False on fallback.

    The check runs on the loop's own thread, once per turn of the loop, until it succeeds.
    Gives up after ``fallback`` seconds (the loop's thread is blocked, or a task never
    stops running) or as soon as the loop is closed.
    """
    parked = threading.Event()
    given_up = threading.Event()

    def check() -> None:  # on the loop's thread
        if given_up.is_set():
            return
        if _all_tasks_parked(loop):
            parked.set()
        else:
            loop.call_soon(check)

    try:
        loop.call_soon_threadsafe(check)
    except RuntimeError:  # the loop is closed: nobody waits on it any more
        return False
    deadline = time.monotonic() + fallback
    try:
        while not parked.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if loop.is_closed() or time.monotonic() >= deadline:
                return False
        return True
    finally:
        given_up.set()


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class UnsafeCall:
    """A call into an event loop from a thread that does not run that loop."""

    method: str
    thread: str


class LoopWatch:
    """Notices non-thread-safe calls into the running asyncio loop from other threads.

    Only the loop's own thread may call ``loop.call_soon`` (which ``future.set_result``,
    ``event.set()`` and ``loop.create_task`` use), ``call_later`` or ``call_at``; from
    any other thread the way in is ``loop.call_soon_threadsafe``, which also wakes the
    loop up. Inside a coroutine, ``with LoopWatch() as watch:`` replaces those three
    methods on the running loop until the block ends: a call from another thread is
    written to ``watch.unsafe_calls`` and passed on through ``call_soon_threadsafe``, so
    that the mistake is recorded instead of leaving the loop asleep.

    The watch also takes over the loop's exception handler for good (it is not given
    back at the end of the block): what the loop would report on stderr, such as
    "Future exception was never retrieved" for a future whose ``set_exception`` raced
    with the loop's thread, is written to ``watch.loop_errors`` instead, even when it is
    reported later, as the future is garbage collected.

    Use it on a loop you own (a test's fresh loop), not on a notebook's own loop.
    """

    def __init__(self) -> None:
        self.unsafe_calls: list[UnsafeCall] = []
        self.loop_errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> LoopWatch:
        loop = self._loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._report)
        loop_thread = threading.get_ident()
        for method in ("call_soon", "call_later", "call_at"):
            original = getattr(loop, method)
            setattr(loop, method, self._guard(loop, loop_thread, method, original))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            for method in ("call_soon", "call_later", "call_at"):
                self._loop.__dict__.pop(method, None)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        detail = f": {type(error).__name__}: {error}" if error is not None else ""
        self.loop_errors.append(f"{context.get('message', 'error')}{detail}")

    def _guard(
        self,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int,
        method: str,
        original: Callable[..., Any],
    ) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                return original(*args, **kwargs)
            self.unsafe_calls.append(UnsafeCall(method, threading.current_thread().name))
            return loop.call_soon_threadsafe(lambda: original(*args, **kwargs))

        return guarded


def on_fresh_loop(
    async_fn: Callable[..., Coroutine[Any, Any, Any]],
    *args: Any,
    debug: bool = False,
    timeout: float = 5.0,
) -> Any:
    """Run ``async_fn(*args)`` on a brand-new event loop in a helper thread; return its result.

    The new loop is quiet: unlike a notebook's own loop, nothing else wakes it up, so a
    demonstration shows exactly what its own code does. ``debug=True`` turns on
    asyncio's debug mode. Raises what ``async_fn`` raised, or :class:`TimeoutError`
    after ``timeout`` seconds (the helper thread is then left behind, asleep).
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(async_fn(*args), debug=debug)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="fresh-loop", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the fresh loop was still running after {timeout} seconds")
    if "error" in box:
        raise box["error"]
    return box["value"]


def fresh() -> ModuleType:
    """A new copy of this module, loaded from disk, unaffected by earlier monkeypatching."""
    return testing_fresh("concurrent_burgers.callbacks")
