"""Intake: every folder, file and archive member under SUBMISSIONS becomes a graded
submission or a "not graded" line with its reason; near misses are matched and noted.

Fast: nothing is graded here, intake reads folders built in tmp_path."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from autograder import intake
from autograder.course import UserError
from autograder.grading import Submission

NB = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def put(root: Path, relative: str, text: str = NB, mtime: float | None = None) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def read(root: Path, roster: dict[str, str] | None = None) -> intake.Intake:
    scratch = root.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    return intake.read(root, scratch, roster)


def by_key(found: intake.Intake) -> dict[tuple[str, str], Submission]:
    return {(s.student, s.assignment.id): s for s in found.submissions}


def not_graded(found: intake.Intake) -> dict[str, str]:
    return {n.path: n.reason for n in found.not_graded}


def only(found: intake.Intake) -> Submission:
    assert len(found.submissions) == 1, found
    return found.submissions[0]


@pytest.mark.parametrize(
    ("name", "expected", "miss"),
    [
        ("01-waiting", "01-waiting", None),
        ("02-Burgers", "02-burgers", "letter case"),
        ("01_waiting", "01-waiting", "'_' for '-'"),
        ("01-waiting-Copy1", "01-waiting", "'-Copy1'"),
        ("01-waiting (1)", "01-waiting", "' (1)'"),
        ("01-waiting-2", "01-waiting", "'-2'"),
        ("05_First_Coroutine-Copy2", "05-first-coroutine", "letter case"),
        ("homework", None, None),
        ("Untitled", None, None),
    ],
)
def test_match_assignment(name, expected, miss):
    """Exact names match silently; near misses match and say what differed; others don't."""
    match = intake.match_assignment(name)
    if expected is None:
        assert match is None
        return
    assignment, misses = match
    assert assignment.id == expected
    assert (miss is None) == (not misses)
    if miss:
        assert any(miss in m for m in misses), misses


def test_tree_exact_names_have_no_notes(tmp_path):
    """The plain tree: one submission per assignment folder, no notes, nothing listed."""
    root = tmp_path / "subs"
    put(root, "alice/00-welcome/00-welcome.ipynb")
    put(root, "alice/01-waiting/01-waiting.ipynb")
    put(root, "bob/00-welcome/00-welcome.ipynb")
    found = read(root)
    assert set(by_key(found)) == {
        ("alice", "00-welcome"),
        ("alice", "01-waiting"),
        ("bob", "00-welcome"),
    }
    assert all(s.notes == () for s in found.submissions)
    assert found.not_graded == []


def test_case_of_the_folder_name(tmp_path):
    """02-Burgers is 02-burgers, noted."""
    root = tmp_path / "subs"
    put(root, "alice/02-Burgers/02-burgers.ipynb")
    sub = only(read(root))
    assert (sub.student, sub.assignment.id) == ("alice", "02-burgers")
    assert "letter case" in " ".join(sub.notes) and "alice/02-Burgers" in sub.notes[0]


def test_underscore_for_dash(tmp_path):
    """01_waiting is 01-waiting, noted."""
    root = tmp_path / "subs"
    put(root, "alice/01_waiting/01_waiting.ipynb")
    sub = only(read(root))
    assert sub.assignment.id == "01-waiting"
    assert "'_' for '-'" in " ".join(sub.notes)


def test_copy_suffix(tmp_path):
    """01-waiting-Copy1.ipynb, alone in its folder, is graded, noted."""
    root = tmp_path / "subs"
    put(root, "alice/01-waiting/01-waiting-Copy1.ipynb")
    sub = only(read(root))
    assert sub.path.name == "01-waiting-Copy1.ipynb"
    assert "'-Copy1'" in " ".join(sub.notes)


def test_untitled_in_an_assignment_folder(tmp_path):
    """Untitled.ipynb in 01-waiting/ is 01-waiting's notebook, noted."""
    root = tmp_path / "subs"
    put(root, "alice/01-waiting/Untitled.ipynb")
    sub = only(read(root))
    assert sub.assignment.id == "01-waiting" and sub.path.name == "Untitled.ipynb"
    assert "alice/01-waiting/Untitled.ipynb" in " ".join(sub.notes)


def test_notebook_loose_in_the_student_folder(tmp_path):
    """alice/03-cleaning.ipynb counts for 03-cleaning, noted; a loose Untitled cannot."""
    root = tmp_path / "subs"
    put(root, "alice/03-cleaning.ipynb")
    put(root, "alice/Untitled.ipynb")
    found = read(root)
    sub = only(found)
    assert sub.assignment.id == "03-cleaning"
    assert "loose" in sub.notes[0]
    assert "names no assignment" in not_graded(found)["alice/Untitled.ipynb"]


def test_several_candidates_exact_name_wins(tmp_path):
    """A blank 01-waiting.ipynb and a newer, solved -Copy1: the exact name is graded, and
    the notes and the report name the other."""
    root = tmp_path / "subs"
    put(root, "alice/01-waiting/01-waiting.ipynb", mtime=1_000_000)
    put(root, "alice/01-waiting/01-waiting-Copy1.ipynb", mtime=2_000_000)
    found = read(root)
    sub = only(found)
    assert sub.path.name == "01-waiting.ipynb"
    assert "exact name" in sub.notes[-1] and "01-waiting-Copy1.ipynb" in sub.notes[-1]
    assert "was graded" in not_graded(found)["alice/01-waiting/01-waiting-Copy1.ipynb"]


def test_several_candidates_else_the_newest(tmp_path):
    """No exact name: the newest notebook is graded, the others named."""
    root = tmp_path / "subs"
    put(root, "alice/01-waiting/Untitled.ipynb", mtime=1_000_000)
    put(root, "alice/01-waiting/01-waiting-Copy1.ipynb", mtime=3_000_000)
    put(root, "alice/01-waiting (1).ipynb", mtime=2_000_000)
    found = read(root)
    sub = only(found)
    assert sub.path.name == "01-waiting-Copy1.ipynb"
    assert "newest" in sub.notes[-1]
    assert "Untitled.ipynb" in sub.notes[-1] and "01-waiting (1).ipynb" in sub.notes[-1]
    assert {"alice/01-waiting/Untitled.ipynb", "alice/01-waiting (1).ipynb"} == set(
        not_graded(found)
    )


def test_stray_file_and_unknown_folder_are_listed(tmp_path):
    """Strays are listed with a reason; data files beside a notebook travel with it; the
    four ignored names are passed over silently."""
    root = tmp_path / "subs"
    put(root, "alice/00-welcome/00-welcome.ipynb")
    put(root, "alice/00-welcome/prices.csv", "a,b")  # travels with the notebook
    put(root, "alice/00-welcome/timestamp.txt", "2026-01-01 10:00:00")
    put(root, "alice/00-welcome/.ipynb_checkpoints/00-welcome-checkpoint.ipynb")
    put(root, "alice/.DS_Store", "")
    put(root, "alice/__pycache__/x.pyc", "")
    put(root, "alice/notes.txt", "hello")
    put(root, "alice/homework/mine.ipynb")
    put(root, "README.txt", "the class")
    put(root, "carol/.DS_Store", "")
    found = read(root)
    assert set(by_key(found)) == {("alice", "00-welcome")}
    listed = not_graded(found)
    assert set(listed) == {"alice/notes.txt", "alice/homework", "README.txt", "carol"}
    assert "not a notebook" in listed["alice/notes.txt"]
    assert "no assignment called 'homework'" in listed["alice/homework"]
    assert "mine.ipynb" in listed["alice/homework"]
    assert "outside any student folder" in listed["README.txt"]
    assert "no assignment folder or notebook" in listed["carol"]


def test_empty_assignment_folder_still_gets_a_row(tmp_path):
    """An assignment folder with no notebook is a submission (it will score 0), noted."""
    root = tmp_path / "subs"
    (root / "frank" / "00-welcome").mkdir(parents=True)
    sub = only(read(root))
    assert (sub.student, sub.assignment.id) == ("frank", "00-welcome")
    assert "holds no notebook" in sub.notes[0]


def test_assignment_folder_unpacked_twice(tmp_path):
    """01-waiting/01-waiting/01-waiting.ipynb is read from the inner folder, noted."""
    root = tmp_path / "subs"
    put(root, "alice/01-waiting/01-waiting/01-waiting.ipynb")
    found = read(root)
    sub = only(found)
    assert sub.path == root / "alice/01-waiting/01-waiting/01-waiting.ipynb"
    assert "inside alice/01-waiting" in " ".join(sub.notes)
    assert found.not_graded == []


def test_nbgrader_collect_tree(tmp_path):
    """What `nbgrader collect` gathers: submitted/<student>/<assignment>/ and a timestamp."""
    root = tmp_path / "submitted"
    put(root, "alice/00-welcome/00-welcome.ipynb")
    put(root, "alice/00-welcome/timestamp.txt", "2026-12-01 09:00:00.000000 UTC")
    found = read(root)
    assert only(found).path == root / "alice/00-welcome/00-welcome.ipynb"
    assert found.not_graded == []


def canvas_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_canvas_zip_with_a_stray_file(tmp_path):
    """Every matched student of a Canvas zip is found (late work noted, a student's data
    file staged beside their notebook, a repeated upload's -1 matched); the stray is listed."""
    root = tmp_path / "subs"
    root.mkdir()
    canvas_zip(
        root / "submissions.zip",
        {
            "smithjane_1234_5678_00-welcome.ipynb": NB,
            "doejohn_LATE_2345_6789_00-welcome-1.ipynb": NB,
            "doejohn_LATE_2345_6789_prices.csv": "a,b",
            "leeann_3456_7890_Untitled.ipynb": NB,
            "kimbo_4567_8901_homework.zip": "PK",
            "instructions.txt": "read me",
        },
    )
    found = read(root)
    subs = by_key(found)
    assert set(subs) == {
        ("smithjane", "00-welcome"),
        ("doejohn", "00-welcome"),
        ("leeann", "00-welcome"),
    }
    assert subs["smithjane", "00-welcome"].notes == ()
    john = subs["doejohn", "00-welcome"]
    assert "late" in " ".join(john.notes) and "'-1'" in " ".join(john.notes)
    assert (john.path.parent / "prices.csv").read_text() == "a,b"
    assert "every other notebook" in " ".join(subs["leeann", "00-welcome"].notes)
    listed = not_graded(found)
    assert set(listed) == {
        "submissions.zip:instructions.txt",
        "submissions.zip:kimbo_4567_8901_homework.zip",
    }
    assert "outside any student folder" in listed["submissions.zip:instructions.txt"]
    assert "a student uploaded" in listed["submissions.zip:kimbo_4567_8901_homework.zip"]


def test_canvas_flat_folder_and_zip_as_submissions(tmp_path):
    """SUBMISSIONS may be the zip itself, or the flat folder it unpacks to."""
    members = {"smithjane_1234_5678_00-welcome.ipynb": NB, "doejohn_2345_6789_01_waiting.ipynb": NB}
    archive = canvas_zip(tmp_path / "export.zip", members)
    from_zip = read(archive)
    flat = tmp_path / "flat"
    for name, text in members.items():
        put(flat, name, text)
    from_folder = read(flat)
    for found in (from_zip, from_folder):
        assert set(by_key(found)) == {("smithjane", "00-welcome"), ("doejohn", "01-waiting")}
        assert found.not_graded == []


def test_moodle_folder(tmp_path):
    """Moodle: <Full Name>_<participant id>_assignsubmission_file_/ holds the notebook."""
    root = tmp_path / "subs"
    put(root, "Jane Smith_4242_assignsubmission_file_/02-burgers.ipynb")
    put(root, "Jane Smith_4242_assignsubmission_file_/menu.csv", "x")
    put(root, "José García_4243_assignsubmission_file_/essay.pdf", "%PDF")
    put(root, "Ann Lee_4244_assignsubmission_onlinetext_/onlinetext.html", "<p>hi</p>")
    found = read(root)
    sub = only(found)
    assert (sub.student, sub.assignment.id, sub.notes) == ("jane-smith", "02-burgers", ())
    listed = not_graded(found)
    assert set(listed) == {
        "José García_4243_assignsubmission_file_",
        "Ann Lee_4244_assignsubmission_onlinetext_",
    }
    assert "without a notebook" in listed["José García_4243_assignsubmission_file_"]


def test_roster_maps_lms_names_and_ids(tmp_path):
    """The roster maps an LMS name (any case and punctuation) or an LMS number to the
    student id; a name it lacks keeps its LMS name, noted."""
    roster_csv = tmp_path / "roster.csv"
    roster_csv.write_text("lms_name,student_id\nSmithJane,s001\n2345,s002\nJane Smith,s001\n")
    roster = intake.load_roster(roster_csv)
    root = tmp_path / "subs"
    put(root, "smithjane_1234_5678_00-welcome.ipynb")
    put(root, "doejohn_2345_6789_00-welcome.ipynb")
    put(root, "leeann_3456_7890_00-welcome.ipynb")
    put(root, "Jane Smith_4242_assignsubmission_file_/01-waiting.ipynb")
    found = read(root, roster)
    subs = by_key(found)
    assert set(subs) == {
        ("s001", "00-welcome"),
        ("s002", "00-welcome"),
        ("leeann", "00-welcome"),
        ("s001", "01-waiting"),
    }
    assert "not in the roster" in subs["leeann", "00-welcome"].notes[0]
    assert subs["s001", "00-welcome"].notes == ()


def test_roster_without_its_columns_is_a_user_error(tmp_path):
    """A roster without lms_name,student_id says so."""
    bad = tmp_path / "roster.csv"
    bad.write_text("name,id\nx,y\n")
    with pytest.raises(UserError, match="lms_name,student_id"):
        intake.load_roster(bad)


def test_zip_members_that_climb_out_are_refused(tmp_path):
    """Members with '..' or an absolute path are refused, listed, and never written."""
    root = tmp_path / "subs"
    root.mkdir()
    canvas_zip(
        root / "class.zip",
        {
            "alice/00-welcome/00-welcome.ipynb": NB,
            "../evil.ipynb": NB,
            "alice/../../evil2.ipynb": NB,
            "/tmp/evil3.ipynb": NB,
        },
    )
    found = read(root)
    assert set(by_key(found)) == {("alice", "00-welcome")}
    listed = not_graded(found)
    assert "'..'" in listed["class.zip:../evil.ipynb"]
    assert "'..'" in listed["class.zip:alice/../../evil2.ipynb"]
    assert "absolute" in listed["class.zip:/tmp/evil3.ipynb"]
    assert not (tmp_path / "evil.ipynb").exists() and not (root / "evil2.ipynb").exists()
    assert not list(tmp_path.rglob("evil*"))


def test_zip_of_the_tree_in_one_folder(tmp_path):
    """A zip of the whole tree in one top folder is read from inside that folder."""
    archive = canvas_zip(
        tmp_path / "class.zip",
        {"submissions/alice/00-welcome/00-welcome.ipynb": NB, "submissions/alice/x.txt": "x"},
    )
    found = read(archive)
    assert set(by_key(found)) == {("alice", "00-welcome")}
    assert set(not_graded(found)) == {"class.zip:submissions/alice/x.txt"}


def test_not_graded_csv(tmp_path):
    """not-graded.csv has a path,reason header and one row each."""
    rows = [intake.NotGraded("a/b.txt", "not a notebook, and so on")]
    path = intake.write_not_graded(rows, tmp_path)
    assert path.read_text().splitlines() == ["path,reason", 'a/b.txt,"not a notebook, and so on"']
