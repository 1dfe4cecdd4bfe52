"""Props for notebook 07: blocking libraries called from async code.

The burger shop's app is asynchronous, but some of the libraries it must use are not:
an old till-printer driver, the head office's reporting client. Their calls block the
thread that makes them. The module has two parts:

* the story: :class:`TillPrinter`, a legacy driver whose ``print_receipt`` blocks, can
  report each printed line through a callback, and logs what it does;
  :func:`greeter`, a task that greets customers at the door at a steady beat (a
  heartbeat you can see on a timeline); :func:`longest_gap` measures how long the
  greeter was silent; :class:`HeadOffice`, a blocking reporting client for the
  exercise's "try it" cell;
* a probe for the hidden tests: :class:`ReportArchive`, a stand-in for the head
  office's ``blocking_fetch`` that records which thread ran each call and how many ran
  at once, and can hold calls until a fact is established (enough calls together, the
  event loop idle with every started thread accounted for), never until a clock says
  so. :meth:`ReportArchive.calling` wraps the learner's function for a test.
"""

from __future__ import annotations

import functools
import itertools
import secrets
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from concurrent_burgers.testing import GATE_FALLBACK, EventLog, Heartbeat

# --------------------------------------------------------------------------- the story


class TillPrinter:
    """The shop's old till printer, driven by a blocking library.

    ``printer.print_receipt(order)`` prints a receipt of ``lines`` lines, each taking
    ``seconds / lines``, and blocks its thread the whole time (``time.sleep``). If
    ``on_line`` is given, the driver calls ``on_line(text)`` after each line, on the
    thread that prints. Each receipt is logged as a span on the row ``receipt <order>``;
    ``peak`` is the most receipts that were printing at once.
    """

    def __init__(self, seconds: float = 0.1, lines: int = 3, log: EventLog | None = None) -> None:
        self.seconds = seconds
        self.lines = lines
        self.log = log if log is not None else EventLog()
        self._count = _Counter()

    @property
    def peak(self) -> int:
        return self._count.peak

    def print_receipt(self, order: str, on_line: Callable[[str], Any] | None = None) -> str:
        """Print the receipt for ``order`` (blocking); return what was printed."""
        printed = []
        with self._count, self.log.span("printing", who=f"receipt {order}"):
            for n in range(1, self.lines + 1):
                time.sleep(self.seconds / self.lines)
                text = f"{order}: line {n}/{self.lines}"
                printed.append(text)
                if on_line is not None:
                    on_line(text)
        return f"receipt for {order} ({len(printed)} lines)"


class _Counter:
    """``with counter:`` around a call counts it; ``peak`` is the most calls at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1


async def greeter(log: EventLog, every: float = 0.02, who: str = "greeter") -> None:
    """Greet a customer every ``every`` seconds, forever: cancel it to stop it.

    Each greeting is an instant on the row ``who``. While the event loop is free, the
    greetings come at a steady beat; while something blocks the loop, they stop.
    """
    while True:
        log.mark("hello", who=who)
        await anyio.sleep(every)


def longest_gap(log: EventLog, who: str = "greeter") -> float:
    """The longest time, in seconds, between two instants of ``who`` in ``log``."""
    times = sorted(e.start for e in log.events if e.who == who and e.start == e.end)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class HeadOffice:
    """The head office's reporting client: ``fetch(report_id)`` blocks for ``seconds``.

    Every call is logged as a span on the row ``report <id>``, coloured by the thread
    that ran it, and counted: ``peak`` is the most calls that were running at once.
    """

    def __init__(self, seconds: float = 0.1, log: EventLog | None = None) -> None:
        self.seconds = seconds
        self.log = log if log is not None else EventLog()
        self._count = _Counter()

    @property
    def peak(self) -> int:
        return self._count.peak

    def fetch(self, report_id: Any) -> str:
        """Fetch one report (blocking) and return it."""
        with self._count, self.log.span("fetching", who=f"report {report_id}"):
            time.sleep(self.seconds)
        return f"report {report_id}"


# --------------------------------------------------------------------------- probes


def blocking_fetch(archive: ReportArchive, report_id: Any) -> str:
    """What the learner's code receives as ``blocking_fetch`` (through a partial)."""
    return archive._fetch(report_id)


class ReportArchive:
    """A stand-in for the head office's blocking ``fetch`` that measures without a clock.

    Pass ``archive.fetch`` to the code under test, through :meth:`calling`. Every call
    notes its thread and whether it ran on the event loop's own thread (a direct call,
    which then makes a blocking call that the test's watch stops at once). ``peak``
    counts the most calls running at the same time. Each report carries a secret of
    this archive (:meth:`report_for`), so an answer cannot make one up. What a call
    waits for depends on ``hold``:

    * ``"none"``: nothing; the call returns at once;
    * ``"gate"``: until ``parties`` calls are running together (``gate_met``), or until
      the code is settled (below) with fewer: then no more can ever join;
    * ``"settle"``: every call stays until the loop is idle (it waits in its selector
      with no callback ready and no timer pending) and every thread started since the
      code began has reached the archive. Then nothing more can start before one call
      ends, so ``peak`` is exactly the number of calls the code keeps in flight;
    * ``"heartbeat"``: the call waits for the loop's heartbeat to tick a few times;
      ``loop_stalled`` counts calls that waited in vain (the loop was blocked);
    * ``"order"``: the call for ``ids[0]`` waits until the call for ``ids[-1]`` has
      started (with 2 threads for 3 ids, that happens only once the result of ``ids[1]``
      has come back to the loop), so ``ids[1]`` certainly finishes first; if the code
      settles with ``ids[1]`` never started (one call at a time), it goes at once.

    ``fell_back`` says a fallback released a call; from then on no call is held. Only a
    wrong answer, or a pool that keeps more threads than it uses, reaches one, and it only
    bounds the wait.
    """

    def __init__(
        self,
        hold: str = "none",
        parties: int = 2,
        ids: list[Any] | None = None,
        fallback: float = GATE_FALLBACK,
    ) -> None:
        self.hold = hold
        self.parties = parties
        self.ids = list(ids or [])
        self.fallback = fallback
        self.secret = secrets.token_hex(4)
        self.calls: list[Any] = []
        self.threads: set[int] = set()  # the identity of every thread that ran a call
        self.direct = 0
        self.peak = 0
        self.current = 0
        self.gate_met = False
        self.loop_stalled = 0
        self.fell_back = False
        self.tokens_seen: set[float] = set()
        self.fetch = functools.partial(blocking_fetch, self)
        self._cond = threading.Condition()
        self._loop: Any = None
        self._loop_thread: threading.Thread | None = None
        self._old: set[int] = set()
        self._entered: set[int] = set()
        self._started: set[Any] = set()
        self._heartbeat: Heartbeat | None = None
        self._default_limiter: Any = None
        self.default_before: tuple[Any, float] | None = None
        self.default_after: tuple[Any, float] | None = None

    def report_for(self, report_id: Any) -> str:
        """The report this archive returns for ``report_id``."""
        return f"report {report_id} (archive {self.secret})"

    # ------------------------------------------------------------------ running the code

    def calling(
        self, async_fn: Callable[..., Awaitable[Any]]
    ) -> Callable[[list[Any], int], Awaitable[Any]]:
        """``async_fn(ids, self.fetch, max_threads)`` as a test runs it on a fresh loop.

        Records the loop, its thread and the threads alive before the call, and reads
        AnyIO's default thread limiter of that loop before and after (its object and its
        tokens). With ``hold="heartbeat"``, a heartbeat ticks on the loop meanwhile.
        """

        async def run(ids: list[Any], max_threads: int) -> Any:
            import asyncio

            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.current_thread()
            self._old = {t.ident or 0 for t in threading.enumerate()}
            limiter = anyio.to_thread.current_default_thread_limiter()
            self._default_limiter = limiter
            self.default_before = (limiter, limiter.total_tokens)
            try:
                if self.hold == "heartbeat":
                    async with Heartbeat() as beat:
                        self._heartbeat = beat
                        return await async_fn(ids, self.fetch, max_threads)
                return await async_fn(ids, self.fetch, max_threads)
            finally:
                now = anyio.to_thread.current_default_thread_limiter()
                self.default_after = (now, now.total_tokens)

        return run

    # ------------------------------------------------------------------ one call

    def _fetch(self, report_id: Any) -> str:
        me = threading.current_thread()
        if me is self._loop_thread:
            with self._cond:
                self.direct += 1
                self.calls.append(report_id)
            time.sleep(0.05)  # a real blocking call; the test's watch stops it at once
            return self.report_for(report_id)
        with self._cond:
            self.calls.append(report_id)
            self.threads.add(me.ident or 0)
            self._entered.add(me.ident or 0)
            self._started.add(report_id)
            self.current += 1
            self.peak = max(self.peak, self.current)
            if self.current >= self.parties:
                self.gate_met = True
            if self._default_limiter is not None:
                self.tokens_seen.add(self._default_limiter.total_tokens)
            self._cond.notify_all()
        try:
            self._wait(report_id)
        finally:
            with self._cond:
                self.current -= 1
                self._cond.notify_all()
        return self.report_for(report_id)

    def _wait(self, report_id: Any) -> None:
        if self.hold == "gate":
            self._wait_for(lambda: self.gate_met or self._settled())
        elif self.hold == "heartbeat" and self._heartbeat is not None:
            if not self._heartbeat.wait_for_ticks(3, fallback=self.fallback):
                with self._cond:
                    self.loop_stalled += 1
        elif self.hold == "order" and len(self.ids) > 2 and report_id == self.ids[0]:
            self._wait_for(
                lambda: (
                    self.ids[-1] in self._started
                    or (self.ids[1] not in self._started and self._settled())
                )
            )
        elif self.hold == "settle":
            self._wait_for(self._settled)

    def _wait_for(self, fact: Callable[[], bool]) -> None:
        """Wait, with the lock held between checks, until ``fact()`` is true.

        After one fallback, no call is held any more: a wrong answer pays it once.
        """
        deadline = time.monotonic() + self.fallback
        with self._cond:
            while not (self.fell_back or fact()):
                if time.monotonic() > deadline:
                    self.fell_back = True
                    return
                self._cond.wait(0.001)  # the fact is re-checked; time only bounds a hang

    # ------------------------------------------------------------------ settling

    def _loop_idle(self) -> bool:
        """The loop waits in its selector, with no callback ready and no timer pending."""
        thread, loop = self._loop_thread, self._loop
        if thread is None or loop is None:
            return False
        if not self._in_select(thread):
            return False
        try:
            if len(loop._ready) or any(not h.cancelled() for h in list(loop._scheduled)):
                return False
        except Exception:  # the loop changed under our feet: not settled yet
            return False
        return self._in_select(thread)  # still there: nothing woke it meanwhile

    @staticmethod
    def _in_select(thread: threading.Thread) -> bool:
        frame = sys._current_frames().get(thread.ident or -1)
        return frame is not None and (
            frame.f_code.co_name == "select" and frame.f_code.co_filename.endswith("selectors.py")
        )

    def _settled(self) -> bool:
        """Nothing more can start: the loop is idle and every new thread is in a call.

        Once this holds, it holds until a call ends (only a result coming back can wake
        the loop), so every call waiting on it may go together.
        """
        if not self._loop_idle():
            return False
        return all(
            (t.ident or 0) in self._entered
            for t in threading.enumerate()
            if (t.ident or 0) not in self._old and t is not self._loop_thread and t.is_alive()
        )
