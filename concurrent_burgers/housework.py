"""Props for the cleaning story: housework that keeps a processor busy.

Cleaning a house is work from start to finish: nothing to wait for, every room needs
scrubbing. :func:`scrub` is that work in pure Python (arithmetic in a loop, no I/O, no
sleeping), so it keeps one processor core busy for as long as it runs and holds the
GIL while it does.

Functions that run in another process must be importable there: a worker process
receives a *reference* to the function (its module and name), not its code. That is
why the story's functions live in this module and not in a notebook.

The module has two parts:

* the story: :data:`ROOMS`, :data:`WORKLOADS`, :func:`scrub`, :func:`timed_scrub`
  (which also reports where and when it ran, as a :class:`Visit`) and
  :func:`record_visits` (which draws visits into an event log);
* probes for the hidden tests: :class:`ScrubProbe`, a picklable stand-in for ``scrub``
  that writes every call to a journal file shared by all processes, and makes calls
  wait for each other across processes with fallbacks that never hang;
  :func:`tidily`, which runs the code under test with the probe's heartbeat and stops
  AnyIO's worker processes cleanly afterwards; and :func:`pretend_cpu_count`, which
  makes "the number of CPUs" the same on every machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, NamedTuple

import anyio

from concurrent_burgers.testing import Event, EventLog

# --------------------------------------------------------------------------- the story

ROOMS: list[str] = ["kitchen", "bathroom", "bedroom", "living room"]

#: Workloads that notebook 03 asks the learner to sort into "io" and "cpu".
WORKLOADS: tuple[str, ...] = (
    "download a 2 GB file over the internet",
    "resize a 24-megapixel photo",
    "ask a payment API to approve a card",
    "train a small machine-learning model",
    "run a query on a database server across the network",
    "count the words of a book already loaded in memory",
    "wait for the user to press a key",
    "scrub a room with housework.scrub",
)

#: How many strokes one room takes: some 60 milliseconds of one core's time.
STROKES = 600_000


def scrub(room: str, strokes: int = STROKES) -> int:
    """Scrub ``room`` and return how many specks of dust came off.

    Pure-Python arithmetic in a loop: it keeps one core busy from start to finish and
    never waits for anything. The same room always gives the same number.
    """
    dust = sum(map(ord, room)) or 1
    removed = 0
    for _ in range(strokes):
        dust = dust * 48271 % 2147483647  # a tiny random-number generator (Park-Miller)
        removed += dust & 1
    return removed


class Visit(NamedTuple):
    """One room scrubbed by :func:`timed_scrub`: the result and where and when it ran.

    ``thread`` is the thread's name and its operating-system id (AnyIO names all its
    worker threads alike); ``start`` and ``end`` are ``time.perf_counter()`` readings (a
    clock that all the processes of one computer share); ``cpu`` is the processor time
    the scrubbing thread used, in seconds.
    """

    room: str
    dust: int
    pid: int
    thread: str
    start: float
    end: float
    cpu: float


def timed_scrub(room: str) -> Visit:
    """Scrub ``room`` like :func:`scrub`, and report which process and thread did it, when."""
    start, cpu = time.perf_counter(), time.thread_time()
    dust = scrub(room)
    cpu, end = time.thread_time() - cpu, time.perf_counter()
    thread = threading.current_thread()
    return Visit(room, dust, os.getpid(), f"{thread.name} {thread.native_id}", start, end, cpu)


def record_visits(log: EventLog, visits: Iterable[Visit], what: str = "scrub") -> None:
    """Add each visit to ``log`` as a span (one row per room), with its own thread and process.

    A worker process cannot write into this process's log, so the visits it returns are
    added afterwards; ``log.plot(color_by="process")`` then shows who did what.
    """
    t0 = time.perf_counter() - log.now()  # the clock reading at which the log started
    for v in visits:
        log.events.append(Event(v.room, what, v.start - t0, v.end - t0, v.thread, v.pid))


# --------------------------------------------------------------------------- probes

GATE_FALLBACK = 2.0  # seconds; reached only by wrong answers (see ScrubProbe)
_POLL = 0.003
_HANDOFF = 0.01
_HELPER_PROCESSES = ("resource_tracker", "forkserver")
_WAITS = ("none", "together", "finish_order", "all_workers", "loop_free")


class Call(NamedTuple):
    """One call of a :class:`ScrubProbe`, as its journal saw it."""

    room: str
    pid: int
    thread: str
    on_loop: bool  # an event loop was running on the calling thread


class ScrubProbe:
    """A picklable stand-in for ``scrub`` that the hidden tests hand to ``clean_house``.

    ``probe(room)`` returns ``f"{room}: clean"``. Every call appends a ``start`` and an
    ``end`` line to a journal file that all processes share (appends are atomic), so
    the test can see afterwards which process and thread ran each call, in what order,
    and how many were in flight at once. Depending on ``wait``, each call first waits:

    * ``"none"``: no waiting;
    * ``"together"``: until ``parties`` calls have been in flight at the same time;
    * ``"finish_order"``: until every room listed before its own in ``finish_order`` has
      finished, so concurrent calls finish in that order;
    * ``"all_workers"``: until every process that the code under test started while
      the probe existed has begun a call (read from ``/proc``; on systems without it
      there is no waiting). Limited code then runs at full speed, while code that
      starts a process per room has all of them busy at once, so the journal shows it;
    * ``"loop_free"``: until the event loop that awaits the calls has ticked twice (see
      :meth:`heartbeat` and :func:`tidily`): a loop blocked by a synchronous wait for
      the results never ticks.

    No wait can hang: after ``fallback`` seconds the waiting call writes ``broken`` to
    the journal and every call stops waiting; while worker processes are still
    starting (a busy machine), it waits up to four times as long. Correct answers never
    get there. A call made directly on the test's event loop (no worker process) never
    waits: the tests report it as such. Use it as a context manager so that its
    temporary folder is removed.
    """

    def __init__(
        self,
        wait: str = "none",
        *,
        parties: int = 0,
        finish_order: Iterable[str] = (),
        fallback: float = GATE_FALLBACK,
    ) -> None:
        if wait not in _WAITS:
            raise ValueError(f"wait must be one of {_WAITS}, not {wait!r}")
        self.wait = wait
        self.parties = parties
        self.finish_order = list(finish_order)
        self.fallback = fallback
        self.parent = _proc_pid()
        self.directory = tempfile.mkdtemp(prefix="scrub-probe-")
        self.journal = os.path.join(self.directory, "journal")
        self.ticks = os.path.join(self.directory, "ticks")
        for path in (self.journal, self.ticks):
            with open(path, "x", encoding="utf-8"):
                pass
        self.baseline = sorted(_children(self.parent))

    # -- in whichever process runs the call

    def __call__(self, room: str) -> str:
        ticks = os.stat(self.ticks).st_size
        thread = threading.current_thread().name
        self._write("start", room, os.getpid(), thread, _on_loop(), _proc_pid())
        try:
            self._wait_for_turn(room, ticks)
            return f"{room}: clean"
        finally:
            self._write("end", room)

    def _write(self, *fields: Any) -> None:
        line = (json.dumps(list(fields)) + "\n").encode()
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _starting_workers(self, lines: list[list[Any]]) -> set[int]:
        """Worker processes started while the probe existed that have not begun a call yet."""
        arrived = {line[5] for line in lines if line[0] == "start"}
        others = _children(self.parent) - set(self.baseline) - arrived
        return {pid for pid in others if _is_worker(pid)}

    def _ready(self, room: str, lines: list[list[Any]], ticks: int) -> bool:
        if any(line[0] == "broken" for line in lines):
            return True
        if self.wait == "together":
            return _peak(lines) >= self.parties
        if self.wait == "finish_order":
            ended = {line[1] for line in lines if line[0] == "end"}
            earlier = self.finish_order[: self.finish_order.index(room)]
            return all(r in ended for r in earlier)
        if self.wait == "all_workers":
            return not self._starting_workers(lines)
        if self.wait == "loop_free":
            return os.stat(self.ticks).st_size >= ticks + 2
        return True

    def _wait_for_turn(self, room: str, ticks: int) -> None:
        if _on_loop() and _proc_pid() == self.parent:
            return  # called directly on the test's loop: a fact the tests report, no wait
        if self.wait == "none" or (self.wait == "finish_order" and room not in self.finish_order):
            return
        start = time.monotonic()
        while not self._ready(room, lines := self._lines(), ticks):
            waited = time.monotonic() - start
            if waited > 4 * self.fallback or (
                waited > self.fallback and not self._starting_workers(lines)
            ):
                self._write("broken", room)
                return
            time.sleep(_POLL)
        if self.wait == "finish_order":
            time.sleep(_HANDOFF)  # let the earlier call's result reach the caller first

    # -- in the test's process

    async def heartbeat(self, interval: float = 0.002) -> None:
        """Tick forever on the running event loop (one byte appended to the tick file)."""
        fd = os.open(self.ticks, os.O_WRONLY | os.O_APPEND)
        try:
            while True:
                os.write(fd, b".")
                await anyio.sleep(interval)
        finally:
            os.close(fd)

    def _lines(self) -> list[list[Any]]:
        with open(self.journal, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def calls(self) -> list[Call]:
        """Every call, in the order they started."""
        return [Call(*line[1:5]) for line in self._lines() if line[0] == "start"]

    def finished(self) -> list[str]:
        """The rooms, in the order their calls finished."""
        return [line[1] for line in self._lines() if line[0] == "end"]

    def peak(self) -> int:
        """The most calls that were in flight at the same time, across all processes."""
        return _peak(self._lines())

    @property
    def broken(self) -> bool:
        """True when a wait ran out of patience (the calls did not overlap as needed)."""
        return any(line[0] == "broken" for line in self._lines())

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ScrubProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ScrubProbe(wait={self.wait!r})"


def direct_calls(probe: ScrubProbe) -> list[Call]:
    """The calls made in the test's own process, on its event loop's thread (no worker)."""
    return [c for c in probe.calls() if c.on_loop and c.pid == os.getpid()]


def _peak(lines: list[list[Any]]) -> int:
    current = peak = 0
    for line in lines:
        if line[0] == "start":
            current += 1
            peak = max(peak, current)
        elif line[0] == "end":
            current -= 1
    return peak


def _on_loop() -> bool:
    """True when an asyncio or Trio event loop runs on the calling thread of this process."""
    try:
        asyncio.get_running_loop()  # knows about forks: a forked child runs no loop
        return True
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
            return True
        except RuntimeError:
            pass
    return False


def _proc_pid() -> int:
    """This process's id as ``/proc`` numbers it.

    It differs from ``os.getpid()`` in a PID namespace that still sees the host's
    ``/proc`` (as the course's grading sandbox does): ``/proc/self`` names the process
    in the numbering of ``/proc`` itself.
    """
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def _children(parent: int) -> set[int]:
    """``/proc`` ids of the living (not zombie) children of ``parent``; empty without /proc."""
    children = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] not in (b"Z", b"X") and int(fields[1]) == parent:
            children.add(int(name))
    return children


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` may still run a call: not a helper process, not gone, not a kernel thread.

    multiprocessing's resource tracker and fork server never run calls; kernel threads
    and processes that have exited have no command line.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return False
    return bool(cmdline) and not any(helper in cmdline for helper in _HELPER_PROCESSES)


def tidily(
    async_fn: Callable[..., Awaitable[Any]], probe: ScrubProbe | None = None
) -> Callable[..., Awaitable[Any]]:
    """Wrap ``async_fn`` for a test that runs it on a fresh event loop.

    While it runs, ``probe``'s heartbeat ticks on the loop (for ``wait="loop_free"``).
    When it returns, AnyIO's worker processes are stopped: AnyIO keeps them for reuse
    until the loop ends and then kills them, which on asyncio can print warnings after
    the loop has closed ("Loop ... that handles pid ... is closed"). Here they get an end
    of input instead, exit on their own and are waited for.
    """

    @functools.wraps(async_fn)
    async def wrapper(*args: Any) -> Any:
        try:
            if probe is None or probe.wait != "loop_free":
                return await async_fn(*args)
            async with anyio.create_task_group() as tg:
                tg.start_soon(probe.heartbeat)
                result = await async_fn(*args)
                tg.cancel_scope.cancel()
            return result
        finally:
            await stop_worker_processes()

    return wrapper


async def stop_worker_processes(grace: float = 2.0) -> None:
    """Stop AnyIO's worker processes for the running event loop, politely, and wait for them.

    Uses AnyIO's internal pool (pinned version 4.16); does nothing when it is absent.
    """
    from anyio import to_process

    try:
        workers = to_process._process_pool_workers.get()
        idle = to_process._process_pool_idle_workers.get()
    except (AttributeError, LookupError):
        return
    idle.clear()
    with anyio.CancelScope(shield=True):
        for process in list(workers):
            workers.discard(process)
            with anyio.move_on_after(grace):
                if process.stdin is not None:
                    await process.stdin.aclose()  # end of input: the worker exits
                await process.wait()
            if process.returncode is None:
                process.kill()
            await process.aclose()


@contextlib.contextmanager
def pretend_cpu_count(n: int) -> Iterator[None]:
    """Make ``os.cpu_count()`` (and ``os.process_cpu_count()``) return ``n`` inside the block.

    Default limits (AnyIO's process limiter, ``ProcessPoolExecutor()``) are the number of
    CPUs; pretending a fixed number makes code that ignores its ``workers`` argument
    behave the same on every machine.
    """
    names = [name for name in ("cpu_count", "process_cpu_count") if hasattr(os, name)]
    saved = {name: getattr(os, name) for name in names}
    for name in names:
        setattr(os, name, lambda: n)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(os, name, original)
