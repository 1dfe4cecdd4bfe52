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
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from autograder.course import PACKAGE
from autograder.sandbox import Jail

OUTPUT_LIMIT = 100_000  # characters of output kept per cell
SET_ASIDE = "CellSetAside"


@dataclass(frozen=True)
class Limits:
    cell_seconds: float = 20.0
    notebook_seconds: float = 180.0
    memory_bytes: int = 3 * 1024**3
    attempts: int = 4


class ConfinedKernelManager(AsyncKernelManager):
    """Starts its kernel through :attr:`jail`, talking to it over ``ipc`` sockets.

    The confined kernel has a network of its own, so TCP ports on this side's loopback
    are out of its reach; Unix sockets in a folder both sides see are not (see
    :mod:`.sandbox`).
    """

    jail: Jail | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        return self.jail.command(argv) if self.jail else argv


class CappedClient(NotebookClient):
    """A notebook client that keeps at most :data:`OUTPUT_LIMIT` characters per cell.

    With a ``jail``, its kernel is started confined, and its connection file and
    sockets live in ``<workdir>/.runtime``.
    """

    def __init__(self, *args: Any, jail: Jail | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[int, int] = {}
        self._jail = jail

    def create_kernel_manager(self) -> AsyncKernelManager:
        if self._jail is None:
            return super().create_kernel_manager()
        runtime = self._jail.workdir / ".runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        km = ConfinedKernelManager(
            kernel_name=self.kernel_name,
            config=self.config,
            transport="ipc",
            connection_file=str(runtime / "kernel.json"),
        )
        km.jail = self._jail
        self.km = km
        return km

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
    jail: Jail | None = None,
) -> tuple[NotebookNode, dict[int, str]]:
    """Execute ``nb`` in ``workdir``; return the executed notebook and the cells set aside.

    ``on_kernel`` is told each kernel's process id as soon as it starts, so a supervisor
    can kill it if this process is stopped. With ``jail``, every kernel is started
    confined (see :mod:`.sandbox`).
    """
    set_aside: dict[int, str] = {}
    for _ in range(limits.attempts):
        attempt = copy.deepcopy(nb)
        for index in set_aside:
            attempt.cells[index].source = ""  # nbclient skips empty cells
        stopped = _run_once(attempt, workdir, limits, on_kernel, jail)
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


def _run_once(
    nb: NotebookNode,
    workdir: Path,
    limits: Limits,
    on_kernel: Callable[[int], None],
    jail: Jail | None = None,
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
        jail=jail,
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
        env = _kernel_env(workdir)
        client.execute(env=jail.environment(env) if jail else env, stdout=quiet, stderr=quiet)
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
        # The kernel imports the course helpers of the course being graded (the folder
        # the sandbox lets it see), not whichever copy the venv was installed from.
        PYTHONPATH=os.pathsep.join(
            [str(PACKAGE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    )
    return env
