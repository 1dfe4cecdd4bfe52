"""The command line as instructors and self-learners use it: clear errors, a whole class
graded with a row for everyone, and a self-check with hints."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import course

WELCOME = course.assignment("00-welcome")


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, AUTOGRADER_HINT_STATE=str(tmp_path / "hints.json"))
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help(tmp_path):
    result = run("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    assert "release" in result.stdout and "grade" in result.stdout and "check" in result.stdout


@pytest.mark.parametrize(
    ("make_args", "says"),
    [
        (lambda d: ["check", str(d / "missing.ipynb")], "no such file"),
        (lambda d: ["check", str(d / "notes.txt")], "not a notebook"),
        (lambda d: ["check", str(d / "mystery.ipynb")], "cannot tell which assignment"),
        (lambda d: ["check", str(d)], "is a folder"),
        (lambda d: ["grade", str(d / "nowhere"), "--out", str(d / "out")], "no such folder"),
        (lambda d: ["grade", str(d / "empty"), "--out", str(d / "out")], "no submissions"),
        (lambda d: ["release", "99-nothing"], "unknown assignment"),
    ],
    ids=[
        "missing",
        "not-notebook",
        "unknown-assignment",
        "folder",
        "no-folder",
        "empty",
        "bad-release",
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path, make_args, says):
    """Bad input: exit 2 and one line on stderr, never a traceback."""
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "mystery.ipynb").write_text("{}")
    (tmp_path / "empty").mkdir()
    result = run(*make_args(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 2, result
    assert says in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_grade_a_class(tmp_path):
    """Every student folder gets a row, a JSON entry and a feedback page, whatever it holds."""
    subs = tmp_path / "submissions"
    source = nbformat.read(WELCOME.source, as_version=4)
    release = nbformat.read(WELCOME.release, as_version=4)
    files = {
        "alice": nbformat.writes(source),
        "bob": nbformat.writes(release),
        "carol": '{"cells": [ broken',
        "dave": "",
        "erin": '{"hello": "world"}',
    }
    for student, text in files.items():
        folder = subs / student / WELCOME.id
        folder.mkdir(parents=True)
        (folder / f"{WELCOME.id}.ipynb").write_text(text)
    (subs / "frank" / WELCOME.id).mkdir(parents=True)  # submitted nothing
    out = tmp_path / "out"
    result = run("grade", str(subs), "--out", str(out), "--workers", "2", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    with (out / "grades.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "assignment", "score", "max_score", "notes"]
    scores = {r[0]: (float(r[2]), float(r[3])) for r in rows[1:]}
    assert set(scores) == {"alice", "bob", "carol", "dave", "erin", "frank"}
    assert scores["alice"] == (4, 4)
    assert all(scores[s] == (0, 4) for s in ("bob", "carol", "dave", "erin", "frank"))
    detail = {g["student"]: g for g in json.loads((out / "grades.json").read_text())}
    for student in ("carol", "dave", "erin", "frank"):
        assert detail[student]["notes"], student
        assert all(t["message"] for t in detail[student]["tests"])
        assert {"id", "points", "max_points", "message"} <= set(detail[student]["tests"][0])
    assert "empty file" in detail["dave"]["notes"][0]
    hidden = 'events.append("other task ran")'
    for student in scores:
        page = (out / "feedback" / student / f"{WELCOME.id}.html").read_text()
        assert hidden not in page and "BEGIN HIDDEN TESTS" not in page
    assert "4 / 4" in (out / "feedback" / "alice" / f"{WELCOME.id}.html").read_text()


def test_check_full_marks_and_hints(tmp_path):
    """check exits 0 at full marks; otherwise 1, with rung 1 of the first failing test's
    ladder; --hint climbs that ladder, per notebook file; --hint-reset starts over."""
    good = run("check", str(WELCOME.source), tmp_path=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Full marks" in good.stdout and "greet_lets_others_run" in good.stdout

    ladder = WELCOME.ladders["greet"]
    blank = run("check", str(WELCOME.release), tmp_path=tmp_path)
    assert blank.returncode == 1
    assert "not written yet" in blank.stdout
    assert "First failing test: greet_visible" in blank.stdout
    assert f"Hint 1 of 3 ({ladder.title})" in blank.stdout
    more = run("check", "--hint", str(WELCOME.release), tmp_path=tmp_path)
    assert f"Hint 2 of 3 ({ladder.title})" in more.stdout

    # Another copy of the same notebook has its own ladder state.
    copy = tmp_path / "copy" / "00-welcome.ipynb"
    copy.parent.mkdir()
    copy.write_bytes(WELCOME.release.read_bytes())
    other = run("check", "--hint", str(copy), tmp_path=tmp_path)
    assert "Hint 1 of 3" in other.stdout
    again = run("check", "--hint", str(WELCOME.release), tmp_path=tmp_path)
    assert "Hint 3 of 3" in again.stdout
    reset = run("check", "--hint-reset", str(WELCOME.release), tmp_path=tmp_path)
    assert "Hint 1 of 3" in reset.stdout


def test_make_check_below_full_marks_is_not_a_make_error(tmp_path):
    """`make check` on an unfinished notebook prints the table, and no "Error 1" from make."""
    env = dict(os.environ, AUTOGRADER_HINT_STATE=str(tmp_path / "hints.json"))
    result = subprocess.run(
        ["make", "--no-print-directory", "check", f"NB={WELCOME.release}"],
        cwd=course.ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not written yet" in result.stdout
    assert "make: ***" not in result.stdout + result.stderr


def test_grade_a_canvas_zip(tmp_path):
    """A Canvas zip of 00-welcome, solved and blank, with a stray file: both students get
    their row, the stray is listed in not-graded.csv, and the unpacked zip is gone."""
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(WELCOME.source, f"smithjane_1234_5678_{WELCOME.id}.ipynb")
        zf.write(WELCOME.release, f"doejohn_LATE_2345_6789_{WELCOME.id}-1.ipynb")
        zf.writestr("grading-notes.txt", "not a submission")
    # A short TMPDIR of the test's own (kernels' socket paths live under it and must stay
    # short), to see that the unpacked zip is deleted afterwards.
    scratch = Path(tempfile.mkdtemp(prefix="ag-", dir="/tmp"))
    env = dict(
        os.environ,
        AUTOGRADER_WORK=str(tmp_path / "work"),
        JUPYTER_CONFIG_DIR=str(course.AUTOGRADER),
        TMPDIR=str(scratch),
    )
    out = tmp_path / "out"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", str(archive), "--out", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=course.ROOT,
        )
        left = list(scratch.glob("autograder-intake-*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert not left
    assert result.returncode == 0, result.stdout + result.stderr
    with (out / "grades.csv").open() as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"smithjane", "doejohn"}
    assert (rows["smithjane"]["score"], rows["smithjane"]["max_score"]) == ("4", "4")
    assert (rows["doejohn"]["score"], rows["doejohn"]["max_score"]) == ("0", "4")
    assert "late" in rows["doejohn"]["notes"] and "'-1'" in rows["doejohn"]["notes"]
    with (out / "not-graded.csv").open() as f:
        listed = list(csv.DictReader(f))
    assert [r["path"] for r in listed] == ["submissions.zip:grading-notes.txt"]
    assert "not graded: submissions.zip:grading-notes.txt" in result.stderr


def test_a_deep_temporary_folder_does_not_cost_marks(tmp_path):
    """A TMPDIR too deep for a kernel's Unix socket paths (107 bytes) still grades fully."""
    deep = tmp_path / ("deep-" * 12) / "tmp"
    deep.mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(deep), AUTOGRADER_HINT_STATE=str(tmp_path / "h.json"))
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "check", str(WELCOME.source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_answer_that_defines_nothing_is_told_what_is_missing(tmp_path):
    """An answer cell left without the contract's function fails each test with a sentence
    naming it, not a bare NameError."""
    nb = nbformat.read(WELCOME.release, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "# I will do it later"
    path = tmp_path / f"{WELCOME.id}.ipynb"
    nbformat.write(nb, path)
    result = run("check", str(path), tmp_path=tmp_path)
    assert result.returncode == 1
    assert "`greet` is not defined, so this test could" in result.stdout
    assert "`greet` is not defined, so greet could not run" in result.stdout
