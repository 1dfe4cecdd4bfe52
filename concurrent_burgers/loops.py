"""Props for notebook 05: who runs the first coroutine?

* :func:`who_runs_me` reports the thread, the async library and the asyncio loop that
  are running the code that calls it (a "who is running the loop" probe);
* :func:`where_am_i` is the same report, taken from inside a coroutine;
* :func:`cook` is the kitchen's coroutine: it waits without blocking and logs a span;
* :func:`asyncio_patches` lists the signs that asyncio has been patched to let a loop
  run inside itself, as ``nest_asyncio`` does (an empty list means asyncio is as
  Python ships it).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import anyio
import sniffio

from concurrent_burgers.testing import EventLog

__all__ = [
    "LoopReport",
    "asyncio_patches",
    "cook",
    "hung_before",
    "remember_hang",
    "where_am_i",
    "who_runs_me",
]


@dataclass(frozen=True)
class LoopReport:
    """Where some code ran: its thread, its async library, its asyncio loop.

    ``library`` is ``"asyncio"``, ``"trio"``, or None when no event loop runs the code;
    ``loop_id`` is the ``id()`` of the running asyncio loop (None on Trio or with no loop),
    so two reports with the same ``loop_id`` ran on the same loop.
    """

    thread: str
    library: str | None
    loop_id: int | None

    def __str__(self) -> str:
        where = f"thread {self.thread!r}, "
        if self.library is None:
            return where + "no event loop"
        if self.loop_id is None:
            return where + f"{self.library} loop"
        return where + f"{self.library} loop {self.loop_id:#x}"


def who_runs_me() -> LoopReport:
    """Report the thread, the async library and the asyncio loop running the caller."""
    try:
        library: str | None = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    try:
        loop_id: int | None = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = None
    if library is None and loop_id is not None:
        library = "asyncio"  # a loop runs here, outside any task (a callback)
    return LoopReport(threading.current_thread().name, library, loop_id)


async def where_am_i() -> LoopReport:
    """Give the loop a turn, then report who is running this coroutine."""
    await anyio.sleep(0)
    return who_runs_me()


async def cook(order: str, seconds: float = 0.1, log: EventLog | None = None) -> str:
    """Cook ``order``: wait ``seconds`` without blocking, then return ``"<order> is ready"``.

    With a ``log``, the wait is recorded as a span on the row named after the order,
    labelled with the async library that ran it (the chart colours it by thread).
    Works on asyncio and on Trio.
    """
    if log is None:
        await anyio.sleep(seconds)
    else:
        async with log.span(f"cooking on {sniffio.current_async_library()}", who=order):
            await anyio.sleep(seconds)
    return f"{order} is ready"


def _replaced(name: str, function: object) -> str | None:
    module = getattr(function, "__module__", None) or ""
    if module.split(".")[0] in ("asyncio", "_asyncio"):
        return None
    return f"{name} was replaced by a function from {module or 'somewhere else'}"


def asyncio_patches() -> list[str]:
    """Signs that asyncio was patched to let a loop run inside itself (nest_asyncio does).

    Checks the module-level state that such a patch changes: the ``_nest_patched``
    marks, ``asyncio.run`` and ``asyncio.get_event_loop``, the Task and Future classes,
    and the loop classes' ``run_until_complete`` and ``run_forever``. The patch affects
    the whole process, so the list stays the same in every thread and every later cell.
    """
    signs = []
    if hasattr(asyncio, "_nest_patched"):
        signs.append("the asyncio module carries nest_asyncio's '_nest_patched' mark")
    for name in ("run", "get_event_loop"):
        sign = _replaced(f"asyncio.{name}", getattr(asyncio, name))
        if sign:
            signs.append(sign)
    try:
        import _asyncio  # the fast versions of Task and Future, written in C
    except ImportError:  # pragma: no cover - Python built without its C accelerator
        pass
    else:
        if asyncio.Task is not _asyncio.Task:
            signs.append("asyncio.Task is no longer the fast C version")
        if asyncio.Future is not _asyncio.Future:
            signs.append("asyncio.Future is no longer the fast C version")
    classes: list[type] = [asyncio.BaseEventLoop, asyncio.SelectorEventLoop]
    try:
        running = type(asyncio.get_running_loop())
    except RuntimeError:  # no loop runs in this thread
        pass
    else:
        if running not in classes:
            classes.append(running)
    for cls in classes:
        if "_nest_patched" in vars(cls):
            signs.append(f"the loop class {cls.__name__} is marked '_nest_patched'")
        for method in ("run_until_complete", "run_forever"):
            sign = _replaced(f"{cls.__name__}.{method}", getattr(cls, method))
            if sign:
                signs.append(sign)
    return signs


# Answers whose run_sync never returned inside a running loop, in this kernel. A later
# test of the same answer fails at once with the same verdict instead of waiting for the
# hang limit again: the first test already proved the fact (its call is still stuck).
_HUNG: list[object] = []


def remember_hang(function: object) -> None:
    """Note that ``function`` never returned when called inside a running loop."""
    if not hung_before(function):
        _HUNG.append(function)


def hung_before(function: object) -> bool:
    """True when an earlier test saw ``function`` never return inside a running loop."""
    return any(seen is function for seen in _HUNG)
