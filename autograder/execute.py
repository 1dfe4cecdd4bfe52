"""Run a notebook in a fresh kernel so that no cell can stop the rest from running.

A cell that does not finish within the cell limit, or that kills its kernel, is
*set aside*: the notebook is run again from the top in a new kernel without it, and
the cell gets an error output that says what happened. Hangs inside ``await`` that no
interrupt can stop (ipykernel issue #881) are handled the same way as a plain
``while True: pass``. Outputs are capped so a flood of printing cannot exhaust memory.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

OUTPUT_LIMIT = 100_000  # characters of output kept per cell
SET_ASIDE = "CellSetAside"


@dataclass(frozen=True)
class Limits:
    cell_seconds: float = 20.0
    notebook_seconds: float = 180.0
    memory_bytes: int = 3 * 1024**3
    attempts: int = 4


class CappedClient(NotebookClient):
    """A notebook client that keeps at most :data:`OUTPUT_LIMIT` characters per cell."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[int, int] = {}

    def output(
        self, outs: list[NotebookNode], msg: dict, display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        size = len(str(msg.get("content", "")))
        used = self._kept.get(cell_index, 0)
        self._kept[cell_index] = used + size
        if used + size <= OUTPUT_LIMIT:
            return super().output(outs, msg, display_id, cell_index)
        if used <= OUTPUT_LIMIT:
            outs.append(
                nbformat.v4.new_output(
                    "stream", name="stdout", text="\n[... output cut: too much was printed ...]\n"
                )
            )
        return None


def ran_out_of_time(reason: str) -> bool:
    """Whether a cell was set aside for running past the cell limit (see :func:`_run_once`)."""
    return reason.startswith(_TIMED_OUT)


_TIMED_OUT = "This cell was stopped: it was still running after"


def _set_aside_output(reason: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=SET_ASIDE, evalue=reason, traceback=[reason])


def run_notebook(
    nb: NotebookNode,
    workdir: Path,
    limits: Limits,
    on_kernel: Callable[[int], None] = lambda pid: None,
    confine: Callable[[], None] | None = None,
) -> tuple[NotebookNode, dict[int, str]]:
    """Execute ``nb`` in ``workdir``; return the executed notebook and the cells set aside.

    ``on_kernel`` is told each kernel's process id as soon as it starts, so a supervisor
    can kill it if this process is stopped. With ``confine``, each run happens in a
    forked process that calls ``confine()`` first (see :mod:`.sandbox`).
    """
    set_aside: dict[int, str] = {}
    for _ in range(limits.attempts):
        attempt = copy.deepcopy(nb)
        for index in set_aside:
            attempt.cells[index].source = ""  # nbclient skips empty cells
        if confine is None:
            stopped = _run_once(attempt, workdir, limits, on_kernel)
        else:
            attempt, stopped = _run_forked(attempt, workdir, limits, on_kernel, confine)
        if stopped is None:
            break
        index, reason = stopped
        set_aside[index] = reason
    else:
        attempt = copy.deepcopy(nb)
        set_aside[-1] = "Too many cells had to be set aside; grading gave up."

    for index, reason in set_aside.items():
        if index >= 0:
            attempt.cells[index].source = nb.cells[index].source
            attempt.cells[index].outputs = [_set_aside_output(reason)]
    return attempt, set_aside


def _run_forked(
    nb: NotebookNode,
    workdir: Path,
    limits: Limits,
    on_kernel: Callable[[int], None],
    confine: Callable[[], None],
) -> tuple[NotebookNode, tuple[int, str] | None]:
    """:func:`_run_once` in a forked process that confines itself first.

    A PID namespace serves one kernel only, so every run needs a process of its own.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked process: confine, run, send the result, leave
        os.close(read_end)
        try:
            confine()
            # Kernel ids inside the new PID namespace mean nothing to the supervisor;
            # stopping this process's group stops the kernel with it.
            result: Any = ("ok", _run_once(nb, workdir, limits, lambda pid: None), nb)
        except BaseException as exc:
            result = ("error", f"{type(exc).__name__}: {exc}", None)
        with os.fdopen(write_end, "wb") as out:
            pickle.dump(result, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as src:
        data = src.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("the confined grading process died")
    status, stopped, executed = pickle.loads(data)
    if status != "ok":
        raise RuntimeError(f"the confined grading process failed: {stopped}")
    return executed, stopped


def _run_once(
    nb: NotebookNode, workdir: Path, limits: Limits, on_kernel: Callable[[int], None]
) -> tuple[int, str] | None:
    """Run ``nb`` in place; None if it ran to the end, else (cell index, reason) of the
    cell that hung or killed the kernel."""
    current = {"index": -1}
    client = CappedClient(
        nb,
        timeout=limits.cell_seconds,
        interrupt_on_timeout=False,
        allow_errors=True,
        kernel_name="python3",
        shutdown_kernel="immediate",
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
        resources={"metadata": {"path": str(workdir)}},
    )

    def started(**_: Any) -> None:
        pid = getattr(client.km.provisioner, "pid", None) if client.km else None
        if pid:
            on_kernel(pid)

    def executing(cell_index: int, **_: Any) -> None:
        current["index"] = cell_index

    client.on_notebook_start = started
    client.on_cell_execute = executing
    quiet = subprocess.DEVNULL  # the kernel's own chatter, not the student's output
    try:
        client.execute(env=_kernel_env(workdir), stdout=quiet, stderr=quiet)
    except CellTimeoutError:
        return current["index"], (
            f"{_TIMED_OUT} {limits.cell_seconds:.0f} seconds. Look for an await that never "
            "returns, a loop that never ends, or time.sleep inside async code."
        )
    except DeadKernelError:
        return current["index"], (
            "This cell stopped the Python kernel (it crashed, ran out of memory, or called "
            "os._exit). The cells after it were run again in a fresh kernel without it."
        )
    return None


def _kernel_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(workdir),
        IPYTHONDIR=str(workdir / ".ipython"),
        JUPYTER_RUNTIME_DIR=str(workdir / ".runtime"),
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env
