"""Grade submissions: each in a fresh kernel, in its own process, under hard limits.

The supervisor (this process) imports the heavy libraries once, then forks one child
per submission. The child assembles the notebook, runs it (see :mod:`.execute`) and
sends the executed notebook back. If the child is not done by the notebook limit, the
supervisor kills it and its kernels, and the student still gets a row and a reason.
At most ``workers`` children run at once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder import guard, sandbox
from autograder.assemble import assemble, defined_names, grade_id, is_answer, is_test
from autograder.course import PACKAGE, SOLUTIONS, WORK, Assignment
from autograder.execute import SET_ASIDE, Limits, ran_out_of_time, run_notebook

MAX_SUBMISSION_BYTES = 50 * 1024**2


@dataclass(frozen=True)
class Isolation:
    """What a confined kernel may see of the course, read-only (see :mod:`.sandbox`).

    Besides these, it sees the system libraries, Python, its assignment's folder and
    its own working folder; ``hidden`` paths stay covered even inside a visible one.
    """

    visible: tuple[Path, ...] = (PACKAGE,)
    hidden: tuple[Path, ...] = (SOLUTIONS, WORK)

    def also_hiding(self, *paths: Path) -> Isolation:
        return Isolation(self.visible, self.hidden + tuple(p.resolve() for p in paths))


def isolation_available() -> tuple[bool, str]:
    """Whether kernels can be confined here, and how; tried once (see :mod:`.sandbox`)."""
    return sandbox.available()


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: Assignment
    path: Path
    # What intake noticed (a near-miss name, other candidate notebooks): the grade's
    # notes start with these.
    notes: tuple[str, ...] = ()


@dataclass
class TestResult:
    id: str
    points: float
    max_points: float
    message: str


@dataclass
class Graded:
    """The outcome for one student and assignment: always present, whatever happened."""

    student: str
    assignment: str
    tests: list[TestResult]
    notes: list[str] = field(default_factory=list)
    notebook: NotebookNode | None = None
    seconds: float = 0.0
    # A cell or the whole notebook ran past its time limit: on a busy machine that may be
    # the machine's fault, not the student's (see _supervise).
    out_of_time: bool = False
    # Some cells (or the whole notebook) hung or crashed and were set aside.
    set_aside: bool = False

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tests)


@dataclass(frozen=True)
class SourceCopies:
    """An assignment's instructor notebook and student stub, read once per batch."""

    source: NotebookNode
    release: NotebookNode

    @classmethod
    def load(cls, assignment: Assignment) -> SourceCopies:
        return cls(
            nbformat.read(assignment.source, as_version=4),
            nbformat.read(assignment.release, as_version=4),
        )

    def contract_names(self) -> frozenset[str]:
        """What the answer cells' stubs define: the names the tests call."""
        return frozenset().union(
            *(defined_names(c.source) for c in self.release.cells if is_answer(c))
        )

    def tests(self) -> list[tuple[str, float]]:
        return [
            (grade_id(c), float(c.metadata.nbgrader.get("points", 0)))
            for c in self.source.cells
            if is_test(c)
        ]


# --------------------------------------------------------------------------- one notebook


def read_submission(path: Path) -> tuple[NotebookNode | None, str]:
    """The submitted notebook, or None and a reason the student can read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, f"The submitted file could not be read ({exc.strerror})."
    if size == 0:
        return None, "The submitted notebook is an empty file."
    if size > MAX_SUBMISSION_BYTES:
        return None, f"The submitted notebook is too large ({size // 1024**2} MB)."
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return None, "The submitted file is not a notebook (it is not even text)."
    except ValueError:
        return None, "The submitted file is not a readable notebook (its JSON is broken)."
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "The submitted file is JSON but not a Jupyter notebook."
    try:
        # Read leniently, as Jupyter opens it: keys a notebook may lack (an editor or a
        # script wrote it) are filled in, and what nbformat's validation finds is ignored.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a missing cell id, say: nbformat adds one
            nb = nbformat.reads(
                json.dumps(_with_optional_keys(data)), as_version=4, capture_validation_error={}
            )
    except Exception:
        return None, "The submitted file is JSON but not a Jupyter notebook."
    return nb, ""


def _with_optional_keys(data: dict) -> dict:
    data.setdefault("nbformat", 4)
    data.setdefault("nbformat_minor", 5)
    data.setdefault("metadata", {})
    for cell in data["cells"]:
        if isinstance(cell, dict):
            cell.setdefault("cell_type", "code")
            cell.setdefault("metadata", {})
            cell.setdefault("source", "")
            if cell["cell_type"] == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
    return data


def score(executed: NotebookNode, copies: SourceCopies, secret: str) -> list[TestResult]:
    """One result per test cell of the instructor's notebook, in its order.

    A test passes when it showed no error, wrote nothing to stderr, and printed the
    grading's ``secret`` on its last line (see :mod:`.guard`).
    """
    by_id = {grade_id(c): c for c in executed.cells if is_test(c)}
    contract = copies.contract_names()
    results = []
    for test_id, points in copies.tests():
        cell = by_id.get(test_id)
        message = _failure(cell, secret, contract) if cell is not None else "This test did not run."
        results.append(TestResult(test_id, 0.0 if message else points, points, message))
    return results


def _failure(cell: NotebookNode, secret: str, contract: frozenset[str] = frozenset()) -> str:
    """Why a test cell failed, in the learner's words, or "" when it passed.

    ``contract`` holds the names the answer cells must define.
    """
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            if out.ename in ("ExerciseFailure", SET_ASIDE, guard.TAMPERED):
                return out.evalue
            if out.ename == "NameError" and guard.NAME_PREFIX in out.evalue:
                return guard.WIPED
            missing = re.fullmatch(r"name '(\w+)' is not defined", out.evalue or "")
            if out.ename == "NameError" and missing and missing[1] in contract:
                return (
                    f"`{missing[1]}` is not defined, so this test could not call it. "
                    f"Expected: your answer cell to define `{missing[1]}` under exactly that "
                    "name. Hint: was it renamed, deleted, or left inside another function?"
                )
            return f"{out.ename}: {out.evalue}" if out.evalue else out.ename
        if out.output_type == "stream" and out.name == "stderr":
            return (
                "The test wrote to stderr, which counts as a failure: "
                + _steady(out.text.strip())[:300]
            )
    if not guard.finished(cell, secret):
        return (
            "This test did not run to its end, yet showed no error: something hid its "
            "output (a replaced print, stdout or error display?). It scores 0."
        )
    return ""


# Parts of a message that change from run to run although the answer did not: the
# kernel's file for a cell, /tmp/ipykernel_4242/1234567.py, and object addresses.
_RUN_SPECIFIC = [
    (re.compile(r"\S*/ipykernel_\d+/\d+\.py"), "<a cell>"),
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x…"),
]


def _steady(text: str) -> str:
    """``text`` with what differs between two runs of the same answer taken out."""
    for pattern, same in _RUN_SPECIFIC:
        text = pattern.sub(same, text)
    return text


def _blank(sub: Submission, copies: SourceCopies, reason: str) -> Graded:
    """Every test at 0 for ``reason``, when no test could be scored at all."""
    tests = [TestResult(t, 0.0, p, reason) for t, p in copies.tests()]
    return Graded(sub.student, sub.assignment.id, tests, notes=[*sub.notes, reason])


def grade_in_this_process(
    sub: Submission,
    copies: SourceCopies,
    limits: Limits,
    report_kernel=lambda pid: None,
    isolation: Isolation | None = None,
    runs: Path | None = None,
) -> Graded:
    """Grade one submission here and now (the child's work).

    ``runs`` is the folder that holds every notebook's working folder in this batch;
    with ``isolation``, the kernel sees only its own.
    """
    started = time.monotonic()
    student_nb, problem = read_submission(sub.path)
    if student_nb is None:
        return _blank(sub, copies, problem)
    assembly = assemble(copies.source, copies.release, student_nb)
    workdir = Path(tempfile.mkdtemp(prefix="grade-", dir=runs))
    jail = None
    if isolation is not None:
        own = (*isolation.visible, sub.assignment.release.parent)
        jail = sandbox.Jail(workdir, own, isolation.hidden)
    try:
        # The student's folder travels with the notebook (data files, their own modules).
        for item in sub.path.parent.iterdir():
            if item.is_file() and item.suffix != ".ipynb" and item.stat().st_size < 10 * 1024**2:
                shutil.copy2(item, workdir / item.name)
        armed, secret = guard.arm(assembly.notebook)
        executed, set_aside = run_notebook(armed, workdir, limits, report_kernel, jail)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tests = score(executed, copies, secret)
    if assembly.syntax_errors:
        # Nothing of a broken answer ran: no test may pass or fail for another reason.
        problem = "; ".join(assembly.syntax_errors)
        reason = (
            f"Your answer has a syntax error ({problem}), so none of that cell ran. "
            "Run the cell to see where Python stopped reading, fix it, and run it again."
        )
        tests = [TestResult(t.id, 0.0, t.max_points, reason) for t in tests]
        assembly.notes.append(f"Syntax error in {problem}.")
    graded = Graded(sub.student, sub.assignment.id, tests, [*sub.notes, *assembly.notes])
    graded.out_of_time = any(ran_out_of_time(reason) for reason in set_aside.values())
    graded.set_aside = bool(set_aside)
    if -1 in set_aside:
        graded.notes.append(set_aside[-1])
    elif set_aside:
        graded.notes.append(
            f"{len(set_aside)} cell(s) never finished or crashed the kernel and were set aside; "
            "see the messages in the feedback."
        )
    graded.notebook = guard.disarm(executed, secret)
    graded.seconds = time.monotonic() - started
    return graded


# --------------------------------------------------------------------------- many notebooks


def _child(
    sub: Submission,
    copies: SourceCopies,
    limits: Limits,
    isolation: Isolation | None,
    runs: Path,
    conn: Connection,
) -> None:
    os.setsid()  # our own process group, so the supervisor can stop everything we started
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    try:
        graded = grade_in_this_process(
            sub, copies, limits, lambda pid: conn.send(("kernel", pid)), isolation, runs
        )
    except BaseException as exc:  # report, never lose the student
        graded = _blank(sub, copies, f"The grader failed on this notebook: {exc!r}")
    conn.send(("done", graded))
    conn.close()


@dataclass
class _Running:
    sub: Submission
    process: multiprocessing.process.BaseProcess
    conn: Connection
    deadline: float
    kernels: list[int] = field(default_factory=list)
    # How many other notebooks were being graded at some moment while this one ran.
    company: int = 0


def grade_many(
    subs: Iterable[Submission],
    copies: dict[str, SourceCopies],
    limits: Limits,
    workers: int,
    isolation: Isolation | None = None,
) -> Iterator[Graded]:
    """Grade every submission, ``workers`` at a time; yield results as they finish."""
    runs = Path(tempfile.mkdtemp(prefix="autograder-runs-", dir=_short_temp_dir()))
    try:
        yield from _supervise(list(subs), copies, limits, workers, isolation, runs)
    finally:
        shutil.rmtree(runs, ignore_errors=True)


def _short_temp_dir() -> str | None:
    """Where working folders may go: the usual temporary folder, unless its path is so
    long that a kernel's Unix sockets inside it would pass the 107-byte limit of a socket
    path (a deep TMPDIR); then /tmp."""
    usual = tempfile.gettempdir()
    if len(usual) <= 40 or not os.access("/tmp", os.W_OK):
        return None
    return "/tmp"


def _supervise(
    subs: list[Submission],
    copies: dict[str, SourceCopies],
    limits: Limits,
    workers: int,
    isolation: Isolation | None,
    runs: Path,
) -> Iterator[Graded]:
    """Grade ``subs``, ``workers`` at a time.

    A notebook that ran out of time (a cell or the whole notebook) while other notebooks
    were being graded is not scored yet: once the rest are done it is graded again,
    alone, and that result counts. A busy machine must never cost a student marks.
    """
    retry: list[tuple[Submission, int]] = []
    for graded, job in _fan_out(subs, copies, limits, workers, isolation, runs):
        if graded.out_of_time and job.company:
            retry.append((job.sub, job.company))
        else:
            yield graded
    for sub, company in retry:
        for graded, _ in _fan_out([sub], copies, limits, 1, isolation, runs):
            graded.notes.append(
                f"Graded again, alone: the first time it ran out of time while "
                f"{company} other notebook(s) were being graded on this machine. "
                "This result is the one that counts."
            )
            yield graded


def _fan_out(
    subs: list[Submission],
    copies: dict[str, SourceCopies],
    limits: Limits,
    workers: int,
    isolation: Isolation | None,
    runs: Path,
) -> Iterator[tuple[Graded, _Running]]:
    """Each submission's result with the job that produced it, as they finish."""
    ctx = multiprocessing.get_context("fork")
    queue = subs[::-1]
    running: dict[int, _Running] = {}
    while queue or running:
        while queue and len(running) < workers:
            sub = queue.pop()
            parent_end, child_end = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=_child,
                args=(sub, copies[sub.assignment.id], limits, isolation, runs, child_end),
            )
            process.start()
            child_end.close()
            deadline = time.monotonic() + limits.notebook_seconds
            running[parent_end.fileno()] = _Running(sub, process, parent_end, deadline)
            for job in running.values():
                job.company = max(job.company, len(running) - 1)
        timeout = max(0.0, min(r.deadline for r in running.values()) - time.monotonic())
        ready = wait([r.conn for r in running.values()], timeout=timeout)
        for conn in ready:
            job = running[conn.fileno()]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                kind, payload = "died", None
            if kind == "kernel":
                job.kernels.append(payload)
                continue
            del running[conn.fileno()]
            _stop(job)
            if kind == "done":
                yield payload, job
            else:
                reason = (
                    "The grader's worker for this notebook died unexpectedly (out of "
                    "memory?); no test could be scored."
                )
                yield _blank(job.sub, copies[job.sub.assignment.id], reason), job
        now = time.monotonic()
        for key, job in list(running.items()):
            if now >= job.deadline:
                del running[key]
                _stop(job)
                reason = (
                    f"Grading this notebook took longer than {limits.notebook_seconds:.0f} s "
                    "and was stopped; no test could be scored."
                )
                graded = _blank(job.sub, copies[job.sub.assignment.id], reason)
                graded.out_of_time = graded.set_aside = True
                yield graded, job


def _stop(job: _Running) -> None:
    """Kill a child and every kernel it started (each kernel leads its own group)."""
    for pid in [*job.kernels, job.process.pid]:
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    job.process.join(5)
    job.conn.close()
