"""The course as students and instructors see it: JupyterLab and formgrader in a real browser.

One JupyterLab server, started by `make lab` on a scratch copy of the course, and one headless
Chromium (Debian's, driven by Playwright) serve every test of this module. The tests run in
file order: a student works through 01-waiting and 09-path-operations, then an instructor
opens formgrader.

Each step's screenshot goes to an artifacts folder (printed at the end with the timings);
BROWSER_ARTIFACTS=path chooses it. README_SCREENSHOTS=path (`make screenshots`) also writes
the README's two small pictures there.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

from autograder import course
from autograder.assemble import grade_id, is_test

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "browser tests need Debian's chromium (apt-get install chromium)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")

ROOT = course.ROOT
VENV_BIN = Path(sys.executable).parent
ASSIGNMENT = course.assignment("01-waiting")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Fresh JupyterLab settings: render every cell (no virtual scrolling), fetch no news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
SKIP_NAMES = shutil.ignore_patterns(
    ".git", ".venv", ".grading", "build", "docs", "__pycache__", "*.egg-info", ".*_cache",
    ".ipynb_checkpoints",
)  # fmt: skip


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """What the scratch copy leaves out: the venv, git, work files, Lab state in autograder/."""
    skipped = set(SKIP_NAMES(folder, names))
    if Path(folder) == ROOT / "autograder":
        skipped |= {n for n in names if n == "lab" or n.endswith(".json")}
    return skipped


STEP_SECONDS = 60  # a bound for one browser wait; every step takes seconds
sync_api.expect.set_options(timeout=STEP_SECONDS * 1000)
Url = Callable[[str], str]  # a page's path -> its address, with the token
TIMINGS: list[tuple[str, float]] = []


# --------------------------------------------------------------------------- helpers


class Steps:
    """Times each step and saves a screenshot of the page after it, failed or not."""

    def __init__(self, folder: Path, page: Any) -> None:
        self.folder = folder
        self.page = page
        self.count = 0

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started, outcome = time.perf_counter(), "failed"
        try:
            yield
            outcome = ""
        finally:
            TIMINGS.append(
                (name + (f" ({outcome})" if outcome else ""), time.perf_counter() - started)
            )
            self.count += 1
            suffix = f"-{outcome}" if outcome else ""
            self.page.screenshot(path=self.folder / f"{self.count:02d}-{name}{suffix}.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_score(path: Path) -> float:
    """The points of every graded cell of a notebook: what formgrader should show as maximum."""
    nb = nbformat.read(path, as_version=4)
    return sum(c.metadata.nbgrader.get("points", 0) for c in nb.cells if is_test(c))


def _cell_index(path: Path, predicate: Any) -> int:
    nb = nbformat.read(path, as_version=4)
    return next(i for i, c in enumerate(nb.cells) if predicate(c))


def _solution_of(assignment: course.Assignment, cell_id: str) -> str:
    """The instructor's answer for one answer cell, without nbgrader's solution markers."""
    nb = nbformat.read(assignment.source, as_version=4)
    source = next(c.source for c in nb.cells if grade_id(c) == cell_id)
    return "\n".join(line for line in source.splitlines() if "### " not in line)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = Path(
        os.environ.get("BROWSER_ARTIFACTS") or tmp_path_factory.mktemp("browser-artifacts")
    )
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    total = sum(seconds for _, seconds in TIMINGS)
    lines = [f"{seconds:6.1f} s  {name}" for name, seconds in TIMINGS]
    (folder / "timings.txt").write_text("\n".join([*lines, f"{total:6.1f} s  total", ""]))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbrowser screenshots and timings: {folder}")
        for line in lines:
            print(f"  {line}")


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the course, sharing the checkout's virtual environment."""
    copy = tmp_path_factory.mktemp("course") / "course"
    shutil.copytree(ROOT, copy, ignore=_not_copied)
    # `make lab` in the copy must find the venv installed and up to date, never reinstall.
    (copy / ".venv").mkdir()
    (copy / ".venv" / "bin").symlink_to(VENV_BIN)
    (copy / ".venv" / ".installed").touch()
    stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=copy, check=False)
    assert stale.returncode == 0, "the copy's venv stamp is stale; `make lab` would reinstall"
    return copy


@pytest.fixture(scope="module")
def lab(course_copy: Path, artifacts: Path) -> Iterator[Url]:
    """The base URL of JupyterLab started with `make lab` in the copy, headless, with a token."""
    started = time.perf_counter()
    port, token = _free_port(), uuid.uuid4().hex
    settings = course_copy.parent / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env.update(
        AUTOGRADER_WORK=str(course_copy / ".grading"),  # the copy's own gradebook
        JUPYTER_TOKEN=token,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(course_copy.parent / "lab-workspaces"),
    )
    log = (artifacts / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            "make",
            "lab",
            f"PORT={port}",
            "LAB_ARGS=--no-browser --ip=127.0.0.1 --ServerApp.port_retries=0",
        ],
        cwd=course_copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so that teardown stops it all
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"`make lab` exited; see {artifacts / 'jupyterlab.log'}"
        assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                break
        except OSError:
            time.sleep(0.25)
    TIMINGS.append(("start JupyterLab (make lab)", time.perf_counter() - started))
    yield lambda path: f"{base}/{path}?token={token}"
    request = urllib.request.Request(
        f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
        server.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def page(lab: Url, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started = time.perf_counter()
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(STEP_SECONDS * 1000)
        page = context.pages[0] if context.pages else context.new_page()
        TIMINGS.append(("launch Chromium", time.perf_counter() - started))
        yield page
        context.close()


@pytest.fixture(scope="module")
def steps(artifacts: Path, page: Any) -> Steps:
    return Steps(artifacts, page)


# --------------------------------------------------------------------------- notebook actions


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


def _wait_until_idle(page: Any) -> None:
    """Wait for the kernel to go idle with no cell still queued or running."""
    indicator = page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator")
    page.wait_for_timeout(300)  # let a just-sent request reach the kernel
    sync_api.expect(indicator).to_have_attribute("data-status", "idle")
    busy = page.locator(".jp-NotebookPanel:visible .jp-InputPrompt", has_text="*")
    sync_api.expect(busy).to_have_count(0)


def _output_text(page: Any, index: int) -> str:
    return _cell(page, index).locator(".jp-OutputArea").inner_text()


def _run_cell(page: Any, index: int) -> None:
    _cell(page, index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    _wait_until_idle(page)


def _replace_cell_text(page: Any, index: int, text: str) -> None:
    """Select all of a cell's text and paste ``text`` over it (typing is auto-indented)."""
    editor = _cell(page, index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    editor.evaluate(
        """(el, text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            el.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
        }""",
        text,
    )


def _validate(page: Any) -> tuple[str, str]:
    """Press Validate; return the result's class (validation-success/-failed) and its text."""
    page.locator(".jp-NotebookPanel:visible jp-button.validate-button").click()
    dialog = page.locator(".jp-Dialog")
    sync_api.expect(dialog).to_contain_text("Validation Results")
    message = dialog.locator("#validation-message")
    sync_api.expect(message).to_have_class(re.compile(r"validation-(success|failed)"))
    kind = re.search(r"validation-(success|failed)", message.get_attribute("class") or "")
    return ("validation-" + kind.group(1)) if kind else "", message.inner_text()


def _close_dialog(page: Any) -> None:
    page.keyboard.press("Escape")
    sync_api.expect(page.locator(".jp-Dialog")).to_have_count(0)


def _small_picture(page: Any, locator: Any, name: str) -> None:
    """For `make screenshots`: a small palette PNG of one part of the page."""
    folder = os.environ.get("README_SCREENSHOTS")
    if not folder:
        return
    from PIL import Image

    target = Path(folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=target)
    with Image.open(target) as image:
        small = image.convert("RGB").quantize(colors=64)
    small.save(target, optimize=True)


# --------------------------------------------------------------------------- student


class StudentNotebook:
    """One exercise of a student copy, as a student meets it in JupyterLab."""

    def __init__(self, assignment_id: str, answer_id: str, answer_shows: str) -> None:
        self.assignment = course.assignment(assignment_id)
        self.path = f"notebooks/{assignment_id}/{assignment_id}.ipynb"
        self.answer_id = answer_id
        self.answer_shows = answer_shows  # a word of the instructor's answer, seen once pasted
        self.answer = self.index(lambda c: grade_id(c) == answer_id)
        self.try_it = self.answer + 2  # the markdown "Try it", then the cell that calls it
        self.visible = self.index(lambda c: grade_id(c) == f"{answer_id}_visible")
        assert f"{answer_id}(" in self.cell_source(self.try_it), "no try-it cell after the answer"

    def index(self, predicate: Any) -> int:
        return _cell_index(self.assignment.release, predicate)

    def cell_source(self, index: int) -> str:
        return nbformat.read(self.assignment.release, as_version=4).cells[index].source


def _open_and_run_all(page: Any, lab: Url, steps: Steps, nb: StudentNotebook) -> None:
    """Open the notebook and Run All: it stops at the try-it cell, with the stub's own error."""
    prefix = nb.assignment.id[:2]
    with steps(f"{prefix}-open-notebook"):
        page.goto(lab(f"lab/tree/{nb.path}"))
        sync_api.expect(_cell(page, nb.answer)).to_contain_text(f"def {nb.answer_id}")
        _wait_until_idle(page)  # the kernel has started

    with steps(f"{prefix}-run-all"):
        page.locator("#jp-menu-panel .lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        _wait_until_idle(page)
        # Run All stops at the first error: the "try it" cell, which calls the stub. Its
        # error is the student's own `raise NotImplementedError()`, not the course's code.
        text = _output_text(page, nb.try_it)
        assert "NotImplementedError" in text, text
        assert "concurrent_burgers" not in text, f"course helpers in the traceback: {text}"


def _validate_stub_then_answer(
    page: Any,
    steps: Steps,
    nb: StudentNotebook,
    picture: str | None = None,
    validate_stub: bool = True,
) -> None:
    """The visible test (and Validate) name the stub; the instructor's answer then passes both.

    ``validate_stub=False`` leaves out Validate on the stub (8 s), which one notebook proves.
    """
    prefix = nb.assignment.id[:2]
    # The student runs the visible test next, as the notebook's "Tests" section says.
    with steps(f"{prefix}-stub-friendly-message"):
        _run_cell(page, nb.visible)
        text = _output_text(page, nb.visible)
        assert "not written yet" in text, text
        assert "Traceback" not in text and "testing.py" not in text, f"raw traceback: {text}"
        _cell(page, nb.visible).scroll_into_view_if_needed()
    if picture:
        _small_picture(page, _cell(page, nb.visible), picture)

    if validate_stub:
        with steps(f"{prefix}-validate-fails"):
            kind, text = _validate(page)
            assert kind == "validation-failed", text
            assert "not written yet" in text, text
        _close_dialog(page)

    with steps(f"{prefix}-answer-written"):
        _replace_cell_text(page, nb.answer, _solution_of(nb.assignment, nb.answer_id))
        sync_api.expect(_cell(page, nb.answer)).to_contain_text(nb.answer_shows)
        _run_cell(page, nb.answer)
        _run_cell(page, nb.try_it)
        assert "Error" not in _output_text(page, nb.try_it), _output_text(page, nb.try_it)
        _run_cell(page, nb.visible)
        text = _output_text(page, nb.visible)
        assert "not written yet" not in text and "Error" not in text, text

    with steps(f"{prefix}-validate-succeeds"):
        kind, text = _validate(page)
        assert kind == "validation-success", text
        assert "Success" in text, text
    _close_dialog(page)


def test_student_runs_validates_and_answers(page: Any, lab: Url, steps: Steps) -> None:
    """A student opens 01-waiting, runs it, sees friendly failures, answers, and validates."""
    nb = StudentNotebook("01-waiting", "read_all", answer_shows="gather")
    chart = nb.index(lambda c: ".log.plot(" in c.source)
    _open_and_run_all(page, lab, steps, nb)

    with steps("01-timeline-image"):
        image = _cell(page, chart).locator(".jp-RenderedImage img")
        sync_api.expect(image).to_have_count(1)
        size = image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.src.length]")
        assert size[0] > 100 and size[1] > 50 and size[2] > 1000, f"empty timeline: {size}"
        image.scroll_into_view_if_needed()

    _validate_stub_then_answer(page, steps, nb, picture="student-not-written-yet.png")


def test_student_answers_a_fastapi_exercise(page: Any, lab: Url, steps: Steps) -> None:
    """The same path through 09-path-operations: an app built in process, tested in the page."""
    nb = StudentNotebook("09-path-operations", "create_app", answer_shows="async def")
    _open_and_run_all(page, lab, steps, nb)
    _validate_stub_then_answer(page, steps, nb, validate_stub=False)


# --------------------------------------------------------------------------- instructor


def _loaded_rows(page: Any, cell_class: str) -> Any:
    """formgrader's table rows once its data has loaded (the table is `#main-table`'s tbody).

    DataTables shows one placeholder row while loading or when there is nothing, so the
    rows are read as soon as any row is there: an empty list fails at once, not after a wait.
    """
    sync_api.expect(page.locator("#main-table tr").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    return page.locator(f"#main-table tr:has(td.{cell_class})")


def test_formgrader_lists_every_assignment(page: Any, lab: Url, steps: Steps) -> None:
    """formgrader opens on its assignment list, with every assignment of the course."""
    with steps("formgrader-assignments"):
        page.goto(lab("formgrader"))
        page.wait_for_url(re.compile(r"/formgrader/manage_assignments"))
        rows = page.locator("#main-table tr:has(td.name)")
        sync_api.expect(rows).to_have_count(len(course.assignments()))
        names = [n.strip() for n in page.locator("#main-table td.name").all_inner_texts()]
        assert sorted(names) == sorted(course.assignments()), names
    _small_picture(page, page.locator("table:has(#main-table)"), "instructor-formgrader.png")


def test_formgrader_shows_real_maximum_scores(page: Any, lab: Url, steps: Steps) -> None:
    """formgrader's gradebook gives every assignment the points its tests are worth."""
    real = {a.id: _max_score(a.source) for a in course.assignments().values()}
    with steps("formgrader-max-scores"):
        page.goto(lab("formgrader/gradebook"))
        shown = {}
        for row in _loaded_rows(page, "score").all():
            name = row.locator("td.name").inner_text().strip()
            shown[name] = float(row.locator("td.score").inner_text().split("/")[-1])
        assert shown == real


@pytest.fixture(scope="module")
def graded_class(course_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """01-waiting graded for a class of two (full marks, blank) by the course's grader."""
    started = time.perf_counter()
    subs = tmp_path_factory.mktemp("class")
    for student, notebook in (("alice", ASSIGNMENT.source), ("bob", ASSIGNMENT.release)):
        folder = subs / student / ASSIGNMENT.id
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / notebook.name)
    out = subs.parent / "graded"
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(course_copy / "autograder"),
        AUTOGRADER_WORK=str(course_copy / ".grading"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out)],
        cwd=course_copy,  # `python -m autograder` then grades the copy's course
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with (out / "grades.csv").open() as f:
        rows = list(csv.DictReader(f))
    TIMINGS.append(("grade a class of two (autograder grade)", time.perf_counter() - started))
    return {row["student"]: f"{row['score']} / {row['max_score']}" for row in rows}


def _scores(text: str) -> list[float]:
    return [float(x) for x in text.split("/")]


def test_class_is_graded(graded_class: dict[str, str]) -> None:
    """The course's grader gives the solution full marks and the blank copy zero."""
    full = _max_score(ASSIGNMENT.source)
    assert {s: _scores(v) for s, v in graded_class.items()} == {
        "alice": [full, full],
        "bob": [0, full],
    }


def test_formgrader_lists_graded_submissions(
    page: Any, lab: Url, steps: Steps, graded_class: dict[str, str]
) -> None:
    """After grading, formgrader lists each graded student with their score."""
    with steps("formgrader-submissions"):
        page.goto(lab(f"formgrader/manage_submissions/{ASSIGNMENT.id}"))
        shown = {
            row.locator("td.student-id").inner_text().strip(): _scores(
                row.locator("td.score").inner_text()
            )
            for row in _loaded_rows(page, "student-id").all()
        }
        assert shown == {s: _scores(v) for s, v in graded_class.items()}


def test_graded_notebook_opens_for_manual_grading(
    page: Any, lab: Url, steps: Steps, graded_class: dict[str, str]
) -> None:
    """A graded notebook opens in formgrader's manual-grading view."""
    with steps("formgrader-manual-grading"):
        page.goto(lab(f"formgrader/gradebook/{ASSIGNMENT.id}/{ASSIGNMENT.id}"))
        rows = _loaded_rows(page, "score")
        assert rows.count() == len(graded_class)
        rows.first.locator("a[href*='/formgrader/submissions/']:visible").first.click()
        page.wait_for_url(re.compile(r"/formgrader/submissions/"))
        sync_api.expect(page.locator("body")).to_contain_text("read_all")
