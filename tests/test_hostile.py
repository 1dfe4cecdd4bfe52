"""Hostile and broken submissions: grading never hangs, never loses a student, and cannot
be gamed. One batch of 00-welcome submissions, each broken or cheating in its own way,
graded together with two honest ones whose scores must not move."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from autograder import course, sandbox
from autograder.assemble import is_answer, is_test
from autograder.execute import Limits
from autograder.grading import (
    Graded,
    Isolation,
    SourceCopies,
    Submission,
    grade_many,
    isolation_available,
)
from autograder.reports import student_view

WELCOME = course.assignment("00-welcome")
COPIES = SourceCopies.load(WELCOME)
SOLUTION = next(c.source for c in COPIES.source.cells if is_answer(c))
CORRECT = """
import asyncio

async def greet(name):
    await asyncio.sleep(0.01)
    return f"Hello, {name}!"
"""
WRONG = """
import asyncio

async def greet(name):
    await asyncio.sleep(0.01)
    return "nope"
"""
HIDDEN_LINES = [  # lines only the hidden tests have: the feedback must not show them
    line.strip()
    for cell in COPIES.source.cells
    if is_test(cell) and "### BEGIN HIDDEN TESTS" in cell.source
    for line in cell.source.split("### BEGIN HIDDEN TESTS")[1].splitlines()
    if len(line.strip()) > 20 and line.strip() not in COPIES.release.cells.__repr__()
]
# The cell limit stays well above the tests' 10 s hang guard, so the two never race.
LIMITS = Limits(cell_seconds=20, notebook_seconds=120, memory_bytes=int(1.5 * 1024**3))
ISOLATED, _ = isolation_available()


def answered(answer: str = CORRECT) -> nbformat.NotebookNode:
    nb = copy.deepcopy(COPIES.release)
    for cell in nb.cells:
        if is_answer(cell):
            cell.source = answer.strip()
    return nb


def with_cell(code: str, answer: str = CORRECT, after_answer: bool = False):
    """The answered notebook with a cell of the student's own, before (or after) the answer."""
    nb = answered(answer)
    index = next(i for i, c in enumerate(nb.cells) if is_answer(c)) + after_answer
    nb.cells.insert(index, nbformat.v4.new_code_cell(code.strip()))
    return nb


def text(content: str | bytes) -> Callable[[], str | bytes]:
    return lambda: content


def edit(change: Callable[[nbformat.NotebookNode], None], answer: str = CORRECT):
    nb = answered(answer)
    change(nb)
    return nb


def _drop_tests(nb):
    nb.cells = [c for c in nb.cells if not is_test(c)]


def _duplicate(nb):
    answer_at = next(i for i, c in enumerate(nb.cells) if is_answer(c))
    stale = copy.deepcopy(nb.cells[answer_at])
    stale.source = WRONG.strip()
    stale.id = "stale-copy"  # JupyterLab gives a pasted cell a new id, not new metadata
    nb.cells.insert(answer_at, stale)  # an older, wrong copy first; the last copy counts
    test_at = next(i for i, c in enumerate(nb.cells) if is_test(c))
    twin = copy.deepcopy(nb.cells[test_at])
    twin.id = "twin-test"
    nb.cells.insert(test_at, twin)


def _move_answer_to_end(nb):
    answer_at = next(i for i, c in enumerate(nb.cells) if is_answer(c))
    nb.cells.append(nb.cells.pop(answer_at))
    nb.cells.reverse()


def _retype(nb):
    for cell in nb.cells:
        if is_answer(cell):
            cell.cell_type = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        elif is_test(cell):
            cell.cell_type = "raw"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)


def _kernelspec(nb):
    nb.metadata["kernelspec"] = {"name": "python2", "display_name": "Python 2", "language": "py"}


def _delete_answer(nb):
    nb.cells = [c for c in nb.cells if not is_answer(c)]


def _retype_answer_in_a_new_cell(nb):
    at = next(i for i, c in enumerate(nb.cells) if is_answer(c))
    nb.cells[at] = nbformat.v4.new_code_cell(CORRECT.strip())  # no nbgrader metadata


def without_optional_keys() -> str:
    """The answered notebook as a script might write it: no cell metadata, outputs or ids."""
    nb = json.loads(nbformat.writes(answered()))
    for cell in nb["cells"]:
        for key in ("metadata", "outputs", "execution_count", "id"):
            cell.pop(key, None)
    return json.dumps(nb)


COURSE_FILES = [
    WELCOME.source,
    WELCOME.release,
    course.MANIFEST,
    course.ROOT / "concurrent_burgers" / "testing.py",
]
WRITE_EVERYWHERE = f"""
import pathlib
targets = {[str(p) for p in COURSE_FILES]!r} + [
    {str(course.SOLUTIONS / "planted.txt")!r}, {str(course.WORK / "gradebook.db")!r}]
for target in targets:
    try:
        pathlib.Path(target).write_text("pwned")
        print("WROTE", target)
    except OSError as exc:
        print("blocked:", type(exc).__name__)
"""
READ_SOLUTIONS = """
import json, pathlib
import concurrent_burgers
root = pathlib.Path(concurrent_burgers.__file__).resolve().parent.parent
source = json.loads((root / "solutions/00-welcome/00-welcome.ipynb").read_text())
exec("".join(next(c for c in source["cells"] if c.get("id") == "greet")["source"]))
"""
STUB = "raise NotImplementedError()"
# Each of these tries to get the answer from outside the kernel's own folder; when it
# succeeds, it defines a correct greet after the stub answer.
SEARCH_DISK = """
import json, os, subprocess
# find(1) walks the whole tree in C, several times faster than os.walk: a Python walk of
# the sandbox's ~200,000 files can pass the cell limit when the file cache is cold.
pattern = "*/solutions/*/*.ipynb"
done = subprocess.run(["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")",
                       "-prune", "-o", "-path", pattern, "-print"],
                      capture_output=True, text=True)
found = done.stdout.split()
print("searched the whole file system; found:", found)
for path in found:
    try:
        cells = json.load(open(path))["cells"]
        exec("".join(next(c for c in cells if c.get("id") == "greet")["source"]))
        break
    except Exception:
        pass
"""
FETCH = """
import urllib.request
try:
    exec(urllib.request.urlopen("http://127.0.0.1:{port}/greet.py", timeout=5).read().decode())
    print("FETCHED the answer")
except OSError as exc:
    print("no network:", exc)
"""
RESOLVE = f"""
import socket
try:
    socket.getaddrinfo("pypi.org", 443)
    print("RESOLVED a host name")
    exec({CORRECT!r})  # as if the answer came back in a DNS record
except OSError as exc:
    print("no name resolution:", exc)
"""
# Paths the kernel may see: its Python, the course package and its assignment's folder.
NEEDED = [str(p) for p in sandbox.python_installations()] + [
    str(course.PACKAGE),
    str(WELCOME.release.parent),
]
SNOOP = f"""
import os
needed = {NEEDED!r}
on_the_way = set()
for path in needed:
    while path != "/":
        path = os.path.dirname(path)
        on_the_way.add(path)
seen = []
for root in ["/root", "/home", {str(Path.home())!r}, "/srv", "/mnt", "/opt", "/media", "/work"]:
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in needed]
        seen += [os.path.join(top, n) for n in dirs + files
                 if os.path.join(top, n) not in on_the_way | set(needed)]
print("SEEN", sorted(set(seen))[:20])
for secret in ["/etc/shadow", "/etc/gshadow", "/etc/passwd"]:
    try:
        print("READ", secret, len(open(secret).read()))
    except OSError as exc:
        print("unreadable", secret, type(exc).__name__)
"""
DAEMON_MARK = "grading-daemon-left-behind"
DAEMON = f"""
import os, subprocess, sys
# A child in a session of its own, and a double-forked grandchild: both outlive the kernel
# unless everything the kernel started is stopped with it.
code = "import time; time.sleep(600)  # {DAEMON_MARK}"
subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", code])
    os._exit(0)
"""
LIAR = """
import asyncio

class Liar(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
    def __bool__(self): return True

async def greet(name):
    await asyncio.sleep(0.01)
    return Liar("nope")
"""


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], object]  # a notebook, or raw file content
    score: float | None  # None: any score, but every lost point needs a reason
    says: str = ""  # in the notes or the messages


CASES = [
    Case("honest-correct", answered, 4),
    Case("honest-wrong", lambda: answered(WRONG), 1, "wrong text"),
    # Hangs and crashes: the cell is set aside, the exercise still counts.
    Case("sync-infinite-loop", lambda: with_cell("while True:\n    pass"), 4, "set aside"),
    Case(
        "async-infinite-loop",
        lambda: with_cell("async def spin():\n    while True:\n        pass\n\nawait spin()"),
        4,
        "set aside",
    ),
    Case(
        "time-sleep-in-async",
        lambda: with_cell("import time\n\nasync def nap():\n    time.sleep(3600)\n\nawait nap()"),
        4,
        "set aside",
    ),
    Case(
        "await-never-returns",
        lambda: with_cell("import asyncio\nawait asyncio.Event().wait()"),
        4,
        "set aside",
    ),
    Case(
        "answer-hangs-when-tested",
        lambda: answered("async def greet(name):\n    while True:\n        pass"),
        0,
        "never gave the event loop a turn",
    ),
    Case("reset-namespace", lambda: with_cell("%reset -f"), 0, "removed the notebook's variables"),
    Case("sys-exit", lambda: with_cell("import sys\nsys.exit(3)"), 4),
    Case("kernel-dies", lambda: with_cell("import os\nos._exit(1)"), 4, "set aside"),
    Case("memory-error", lambda: with_cell("big = bytearray(64 * 1024**3)"), 4),
    Case(
        "runaway-allocation",
        lambda: with_cell("hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024**2))"),
        None,
    ),
    Case(
        "output-flood",
        lambda: with_cell("for _ in range(100):\n    print('x' * 1_000_000)"),
        4,
    ),
    # Files that are not (good) notebooks.
    Case("corrupt-json", text('{"cells": [ oops'), 0, "broken"),
    Case("empty-file", text(""), 0, "empty file"),
    Case("binary-garbage", text(bytes(range(256)) * 10), 0, "not"),
    Case("json-not-notebook", text('{"hello": "world"}'), 0, "not a Jupyter notebook"),
    Case(
        "other-assignment",
        lambda: nbformat.read(course.assignment("01-waiting").source, as_version=4),
        0,
        "another assignment",
    ),
    # Cells deleted, duplicated, reordered, retyped; kernelspec changed.
    Case("answer-deleted", lambda: edit(_delete_answer), 0, "answer cells"),
    Case(
        "answer-retyped-in-a-new-cell",
        lambda: edit(_retype_answer_in_a_new_cell),
        4,
        "your code was graded",
    ),
    Case("missing-optional-keys", without_optional_keys, 4, "your code was graded"),
    Case(
        "syntax-error",
        lambda: answered("async def greet(name)\n    return name"),
        0,
        "syntax error (answer cell `greet`, line 1",
    ),
    Case("tests-deleted", lambda: edit(_drop_tests), 4),
    Case("cells-duplicated", lambda: edit(_duplicate), 4),
    Case("cells-reordered", lambda: edit(_move_answer_to_end), 4),
    Case("cells-retyped", lambda: edit(_retype), 4),
    Case("kernelspec-changed", lambda: edit(_kernelspec), 4),
    # Tampering earns nothing.
    Case("forged-eq-hash-bool", lambda: answered(LIAR), 1, "wrong text"),
    Case(
        "patched-probes",
        lambda: with_cell(
            "import concurrent_burgers.testing as T\n"
            "T.strict_equal = lambda a, b: True\nT.expect = lambda *a, **k: None\n"
            "T.fresh = lambda: T",
            WRONG,
        ),
        0,
        "cannot be trusted",
    ),
    Case(
        "patched-builtins",
        lambda: with_cell("import builtins\nbuiltins.sorted = lambda *a, **k: []", WRONG),
        0,
        "builtins.sorted",
    ),
    Case(
        "showtraceback-overridden",
        lambda: with_cell(
            "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
            "ip._showtraceback = lambda *a, **k: None\n"
            "type(ip).showtraceback = lambda *a, **k: None",
            WRONG,
        ),
        0,
        "did not run to its end",
    ),
    Case(
        "errors-swallowed",
        lambda: with_cell(
            "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)", WRONG
        ),
        0,
        "did not run to its end",
    ),
    Case(
        "excepthook-overridden", lambda: with_cell("import sys\nsys.excepthook = print", WRONG), 1
    ),
    Case(
        "patched-time",
        lambda: with_cell(
            "import time\ntime.sleep = lambda s: None\ntime.perf_counter = lambda: 0.0",
            "import time\n\nasync def greet(name):\n    time.sleep(0.01)\n"
            "    return f'Hello, {name}!'",
        ),
        0,
        "time.sleep",
    ),
    Case("writes-course-files", lambda: with_cell(WRITE_EVERYWHERE), 4),
    Case(
        "reads-solutions",
        lambda: with_cell(READ_SOLUTIONS, "raise NotImplementedError()", after_answer=True),
        0 if ISOLATED else None,
    ),
    # An allow-list file system and no network: nothing outside is of any use.
    Case(
        "searches-disk-for-solutions",
        lambda: with_cell(SEARCH_DISK, STUB, after_answer=True),
        0 if ISOLATED else None,
    ),
    Case(
        "fetches-answer-over-http",
        lambda: with_cell(FETCH.format(port=answer_server().server_port), STUB, after_answer=True),
        0 if ISOLATED else None,
    ),
    Case(
        "resolves-host-name",
        lambda: with_cell(RESOLVE, STUB, after_answer=True),
        0 if ISOLATED else None,
    ),
    Case("snoops-on-the-machine", lambda: with_cell(SNOOP), 4),
    Case("leaves-daemons-behind", lambda: with_cell(DAEMON), 4),
]


class _AnswerHandler(BaseHTTPRequestHandler):
    """Hands the correct answer to anyone who asks, and counts who did."""

    asked: list[str] = []  # noqa: RUF012 (one server per test session)

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = CORRECT.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@cache
def answer_server() -> ThreadingHTTPServer:
    """A server on this machine's 127.0.0.1, outside any sandbox, serving the answer."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnswerHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[dict[str, Graded], dict[Path, str], dict[Path, str]]:
    root = tmp_path_factory.mktemp("hostile")
    # Another clone of the course elsewhere on disk (a backup, last year's course).
    clone = tmp_path_factory.mktemp("old-course-copy") / "solutions" / WELCOME.id
    clone.mkdir(parents=True)
    shutil.copy(WELCOME.source, clone)
    subs = []
    for case in CASES:
        path = root / case.name / WELCOME.id / f"{WELCOME.id}.ipynb"
        path.parent.mkdir(parents=True)
        made = case.make()
        if isinstance(made, bytes):
            path.write_bytes(made)
        elif isinstance(made, str):
            path.write_text(made)
        else:
            nbformat.write(made, path)
        subs.append(Submission(case.name, WELCOME, path))
    watched = [*COURSE_FILES, course.SOLUTIONS / "planted.txt", course.WORK / "gradebook.db"]
    before = {p: _digest(p) for p in watched}
    isolation = Isolation().also_hiding(root) if ISOLATED else None
    results = grade_many(subs, {WELCOME.id: COPIES}, LIMITS, workers=4, isolation=isolation)
    graded = {g.student: g for g in results}
    after = {p: _digest(p) for p in watched}
    return graded, before, after


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_submission_gets_a_score_and_a_reason(hostile, case):
    graded, _, _ = hostile
    g = graded[case.name]
    report = f"{g.score}/{g.max_score} notes={g.notes} " + " | ".join(
        f"{t.id}: {t.points} {t.message}" for t in g.tests
    )
    assert g.max_score == 4 and len(g.tests) == 4, report
    if case.score is not None:
        assert g.score == case.score, report
    for t in g.tests:
        assert t.points == t.max_points or t.message, f"{t.id} lost points silently: {report}"
    if case.says:
        assert case.says in " ".join(g.notes + [t.message for t in g.tests]), report
    view = student_view(g)
    shown = nbformat.writes(view) if view is not None else ""
    assert "_grader_guard_" not in shown
    tests_shown = "\n".join(c.source for c in (view.cells if view else []) if is_test(c))
    assert not [line for line in HIDDEN_LINES if line in tests_shown], "feedback shows a test"
    assert len(shown) < 2_000_000, "feedback must stay small whatever was printed"


def test_course_files_are_untouched(hostile):
    """A kernel cannot write into the course, the gradebook or the instructor's folders."""
    graded, before, after = hostile
    if not ISOLATED:
        pytest.skip("this machine cannot confine kernels")
    printed = "".join(
        out.get("text", "")
        for cell in graded["writes-course-files"].notebook.cells
        for out in cell.get("outputs", [])
    )
    assert "WROTE" not in printed and printed.count("blocked") == len(COURSE_FILES) + 2
    for path in [WELCOME.source, WELCOME.release, course.SOLUTIONS / "planted.txt"]:
        assert before[path] == after[path], path


def _printed(g: Graded) -> str:
    return "".join(
        out.get("text", "") for cell in g.notebook.cells for out in cell.get("outputs", [])
    )


def test_no_copy_of_the_solutions_anywhere_on_disk(hostile, tmp_path_factory):
    """A search of the whole file system finds no solutions, though a clone is planted."""
    graded, _, _ = hostile
    planted = list(tmp_path_factory.getbasetemp().glob("old-course-copy*/solutions/*/*.ipynb"))
    assert planted, "the test should have planted a clone of the course"
    if not ISOLATED:
        pytest.skip("this machine cannot confine kernels")
    printed = _printed(graded["searches-disk-for-solutions"])
    assert "searched the whole file system; found: []" in printed, printed[:2000]


def test_no_network(hostile):
    """Neither a server on the grader's 127.0.0.1 nor a name server is reachable."""
    graded, _, _ = hostile
    if not ISOLATED:
        pytest.skip("this machine cannot confine kernels")
    assert "no network:" in _printed(graded["fetches-answer-over-http"])
    assert _AnswerHandler.asked == [], "the kernel reached the grader's loopback"
    assert "no name resolution:" in _printed(graded["resolves-host-name"])


def test_nothing_private_is_visible(hostile):
    """/etc/shadow, /root, /home and the instructor's home show nothing but Python."""
    graded, _, _ = hostile
    if not ISOLATED:
        pytest.skip("this machine cannot confine kernels")
    printed = _printed(graded["snoops-on-the-machine"])
    assert "SEEN []" in printed, printed[:2000]
    assert "READ" not in printed and printed.count("unreadable") == 3, printed[:2000]


def test_solutions_are_out_of_the_kernels_reach():
    """Say plainly whether this machine confines kernels (CI and root machines do)."""
    if not ISOLATED:
        pytest.skip("this machine cannot create user namespaces; kernels are not confined")
    assert ISOLATED


def _grading_processes(mark: str = "autograder-runs-") -> list[str]:
    """Command lines of processes still running from some grading's working folders."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mark in text:
            found.append(text)
    return found


def test_nothing_is_left_running(hostile):
    """After a batch full of hangs and crashes, no kernel or worker survives."""
    assert _grading_processes() == []


def test_no_daemon_outlives_its_kernel(hostile):
    """Processes a kernel detached from itself (own session, double fork) end with it."""
    if not ISOLATED:
        pytest.skip("unconfined, a kernel's detached processes can outlive it")
    assert _grading_processes(DAEMON_MARK) == []


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "not-confined"])
def test_notebook_time_limit_stops_everything(tmp_path, confined):
    """Past the per-notebook limit the notebook is stopped, kernel and all, and still scored."""
    if confined and not ISOLATED:
        pytest.skip("this machine cannot confine kernels")
    path = tmp_path / "slow" / WELCOME.id / f"{WELCOME.id}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(with_cell("while True:\n    pass"), path)
    limits = Limits(cell_seconds=60, notebook_seconds=4)
    isolation = Isolation().also_hiding(tmp_path) if confined else None
    (g,) = grade_many(
        [Submission("slow", WELCOME, path)], {WELCOME.id: COPIES}, limits, 1, isolation
    )
    assert (g.score, g.max_score) == (0, 4)
    assert "longer than 4 s" in g.notes[0]
    assert all("longer than 4 s" in t.message for t in g.tests)
    assert _grading_processes() == []


@pytest.mark.parametrize("bwrap", ["no-such-bwrap", "false"], ids=["missing", "failing"])
def test_without_bubblewrap_grading_says_it_is_not_confined(monkeypatch, bwrap):
    """A laptop without bubblewrap (or without user namespaces) grades unconfined, loudly."""
    monkeypatch.setattr(sandbox, "BWRAP", bwrap)
    available, how = isolation_available()
    assert not available
    assert how.startswith("WARNING: NOT CONFINED") and "solutions/" in how
