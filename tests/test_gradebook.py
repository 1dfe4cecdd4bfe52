"""nbgrader's gradebook is the record: what `autograder grade` scores is what formgrader's
API and `nbgrader export` report, a one-student regrade keeps the class, and an
instructor's manual grade survives a regrade unless --force."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder import course
from autograder.grading import SourceCopies

WELCOME = course.assignment("00-welcome")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gradebook of this module's own: other tests grade 00-welcome too."""
    return tmp_path_factory.mktemp("work")


def environment(work: Path) -> dict[str, str]:
    """What the Makefile exports, with the module's gradebook."""
    return dict(os.environ, AUTOGRADER_WORK=str(work), JUPYTER_CONFIG_DIR=str(course.AUTOGRADER))


def autograder(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = environment(work)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=course.ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def grades_csv(out: Path) -> dict[str, tuple[float, float, str]]:
    with (out / "grades.csv").open() as f:
        return {
            r["student"]: (float(r["score"]), float(r["max_score"]), r["notes"])
            for r in csv.DictReader(f)
        }


@pytest.fixture(scope="module")
def graded(work: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """00-welcome for a class of three: solved, untouched and broken."""
    subs = tmp_path_factory.mktemp("class")
    for student, text in (
        ("alice", WELCOME.source.read_text()),
        ("bob", WELCOME.release.read_text()),
        ("carol", '{"cells": [ broken'),
    ):
        (subs / student / WELCOME.id).mkdir(parents=True)
        (subs / student / WELCOME.id / f"{WELCOME.id}.ipynb").write_text(text)
    out = subs.parent / "out"
    autograder(work, "grade", str(subs), "--out", str(out), "--workers", "2")
    return out


def in_gradebook(work: Path) -> Gradebook:
    """nbgrader's own gradebook API on the module's gradebook."""
    return Gradebook(f"sqlite:///{work / 'gradebook.db'}?timeout=30")


def test_gradebook_holds_the_assignment_and_its_points(work: Path, graded: Path) -> None:
    """The gradebook knows the assignment's graded cells, so formgrader shows its real maximum."""
    tests = dict(SourceCopies.load(WELCOME).tests())
    with in_gradebook(work) as gb:
        notebook = gb.find_notebook(WELCOME.id, WELCOME.id)
        assert {c.name: c.max_score for c in notebook.grade_cells} == tests
        assert gb.find_assignment(WELCOME.id).max_score == sum(tests.values())


def test_formgrader_and_export_report_the_scores_of_grades_csv(work: Path, graded: Path) -> None:
    """formgrader's submissions API and `nbgrader export` agree with grades.csv."""
    ours = grades_csv(graded)
    assert {s: v[:2] for s, v in ours.items()} == {
        "alice": (4, 4),
        "bob": (0, 4),
        "carol": (0, 4),
    }
    assert "broken" in ours["carol"][2]  # the reason is in the sheet instructors upload
    with (graded / "grades-wide.csv").open() as f:
        wide = list(csv.reader(f))
    assert wide[:2] == [["student", WELCOME.id, "total"], ["(maximum)", "4", "4"]]
    assert wide[2:] == [["alice", "4", "4"], ["bob", "0", "0"], ["carol", "0", "0"]]

    env = environment(work)
    code = (
        "import json; from autograder.release import nbgrader_api; "
        f"print(json.dumps(nbgrader_api().get_submissions({WELCOME.id!r})))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    api = {
        s["student"]: (s["score"], s["max_score"], s["autograded"])
        for s in json.loads(listed.stdout)
    }
    assert api == {s: (*v[:2], True) for s, v in ours.items()}

    export = graded.parent / "export.csv"
    subprocess.run(
        [str(Path(sys.executable).with_name("nbgrader")), "export", "--to", str(export)],
        env=env,
        cwd=course.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    with export.open() as f:
        exported = {
            r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(f)
        }
    assert exported == {s: v[:2] for s, v in ours.items()}


def test_nbgrader_generates_feedback_from_what_grade_recorded(work: Path, graded: Path) -> None:
    """`nbgrader generate_feedback` works on grade's record, and hides the hidden tests."""
    subprocess.run(
        [str(Path(sys.executable).with_name("nbgrader")), "generate_feedback", WELCOME.id],
        env=environment(work),
        cwd=course.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for student, score in (("alice", "4.0 / 4.0"), ("bob", "0.0 / 4.0")):
        page = (work / "feedback" / student / WELCOME.id / f"{WELCOME.id}.html").read_text()
        assert f"Score: {score}" in page
        assert "BEGIN HIDDEN TESTS" not in page  # nbgrader's ClearHiddenTests ran


def test_feedback_pages_are_small_titled_and_share_their_styles(graded: Path) -> None:
    """Each page names its student and assignment and links one shared stylesheet."""
    page = graded / "feedback" / "alice" / f"{WELCOME.id}.html"
    text = page.read_text()
    assert f"<title>{WELCOME.id}: feedback for alice</title>" in text
    assert '<link rel="stylesheet" href="../notebook.css">' in text
    assert (graded / "feedback" / "notebook.css").stat().st_size > 10_000
    assert page.stat().st_size < 150_000
    assert str(course.ROOT) not in text


def test_regrading_one_student_keeps_the_class_and_their_manual_grade(
    work: Path, graded: Path, tmp_path: Path
) -> None:
    """A manual grade given in formgrader survives a regrade of that student; --force
    discards it; the other students' rows stay in grades.csv throughout."""
    visible = "greet_visible"
    with in_gradebook(work) as gb:
        grade = gb.find_grade(visible, WELCOME.id, WELCOME.id, "bob")
        grade.manual_score = 1.0  # what formgrader's manual-grading view stores
        gb.db.commit()

    subs = tmp_path / "bob-only"
    (subs / "bob" / WELCOME.id).mkdir(parents=True)
    shutil.copy(WELCOME.release, subs / "bob" / WELCOME.id)
    out = tmp_path / "out"
    autograder(work, "grade", str(subs), "--out", str(out))
    rows = grades_csv(out)
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"][:2] == (4, 4)
    assert rows["bob"][:2] == (1, 4)
    assert "greet_visible was graded by hand" in rows["bob"][2]

    autograder(work, "grade", str(subs), "--out", str(out), "--student", "bob", "--force")
    rows = grades_csv(out)
    assert rows["bob"][:2] == (0, 4) and "by hand" not in rows["bob"][2]
    assert set(rows) == {"alice", "bob", "carol"}


def test_exchange_round_trip_release_collect_grade_return_feedback(tmp_path: Path) -> None:
    """The README's classroom steps on one machine: nbgrader hands the copy out and brings
    it back, `autograder grade` grades what `nbgrader collect` gathered, and nbgrader
    returns the feedback to the student."""
    work = tmp_path / "work"
    home = tmp_path / "student-home"
    home.mkdir()

    def nbgrader(*args: str, cwd: Path = course.ROOT) -> None:
        exe = str(Path(sys.executable).with_name("nbgrader"))
        done = subprocess.run(
            [exe, *args, "--course", "concurrent-burgers"],
            env=environment(work),
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    autograder(work, "record", WELCOME.id)
    nbgrader("release_assignment", WELCOME.id)
    nbgrader("fetch_assignment", WELCOME.id, cwd=home)
    shutil.copy(WELCOME.source, home / WELCOME.id)  # the student solves it
    nbgrader("submit", WELCOME.id, cwd=home)
    nbgrader("collect", WELCOME.id)
    out = tmp_path / "out"
    autograder(work, "grade", str(work / "submitted"), "--out", str(out))
    (student,) = grades_csv(out)
    assert grades_csv(out)[student][:2] == (4, 4)
    nbgrader("generate_feedback", WELCOME.id)
    nbgrader("release_feedback", WELCOME.id)
    nbgrader("fetch_feedback", WELCOME.id, cwd=home)
    (page,) = (home / WELCOME.id / "feedback").glob(f"*/{WELCOME.id}.html")
    assert "Score: 4.0 / 4.0" in page.read_text()
