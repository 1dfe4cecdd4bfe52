"""Grade every solution, every student copy and every sample wrong answer in one batch.

Grading is the slow part of the suite (a fresh kernel per notebook), so the whole set is
graded once per session, four notebooks at a time (they mostly wait); tests read the results.
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

# The suite never writes to the course's own gradebook, where an instructor's class may
# be: every test and every command it runs share a scratch one (see autograder/course.py).
os.environ["AUTOGRADER_WORK"] = tempfile.mkdtemp(prefix="autograder-work-")
atexit.register(shutil.rmtree, os.environ["AUTOGRADER_WORK"], ignore_errors=True)

import nbformat  # noqa: E402
import pytest  # noqa: E402

from autograder import course  # noqa: E402
from autograder.assemble import grade_id, is_answer  # noqa: E402
from autograder.execute import Limits  # noqa: E402
from autograder.grading import (  # noqa: E402
    Graded,
    Isolation,
    SourceCopies,
    Submission,
    grade_many,
    isolation_available,
)

SAMPLES = Path(__file__).parent / "samples"
# COURSE_ONLY=02-burgers,03-cleaning grades just those assignments (for authors at work).
ONLY = [a for a in os.environ.get("COURSE_ONLY", "").split(",") if a]


def selected(assignment_id: str) -> bool:
    return not ONLY or assignment_id in ONLY


# Generous limits: a correct notebook takes seconds; these only bound a broken one.
LIMITS = Limits(cell_seconds=15, notebook_seconds=240)


@dataclass(frozen=True)
class Sample:
    """A sample submission: the student copy with some answer cells filled in."""

    assignment: str
    name: str
    misconception: str
    answers: dict[str, str]
    expect_score: float | None
    expect_failing: tuple[str, ...]
    expect_message: str


def load_samples() -> list[Sample]:
    samples = []
    for path in sorted(SAMPLES.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        for entry in data["sample"]:
            samples.append(
                Sample(
                    assignment=path.stem,
                    name=entry["name"],
                    misconception=entry.get("misconception", ""),
                    answers=entry["answers"],
                    expect_score=entry.get("expect_score"),
                    expect_failing=tuple(entry.get("expect_failing", ())),
                    expect_message=entry.get("expect_message", ""),
                )
            )
    return samples


BOUNDARY_SECONDS = (0.5, 1, 2, 5, 30)


def load_boundaries() -> list[Sample]:
    """The ``[[boundary]]`` entries of tests/samples, one sample per waiting time.

    Each blocks or sleeps for ``{seconds}``; they feed the determinism benchmark, which
    checks that every one of them gets the same verdicts and messages on every run.
    """
    found = []
    for path in sorted(SAMPLES.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        for entry in data.get("boundary", []):
            for seconds in BOUNDARY_SECONDS:
                answers = {
                    k: v.replace("{seconds}", str(seconds)) for k, v in entry["answers"].items()
                }
                found.append(
                    Sample(path.stem, f"{entry['name']}-{seconds}s", "", answers, None, (), "")
                )
    return found


def filled_in(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The student copy with the given answer cells replaced, as a student would submit it."""
    nb = copy.deepcopy(release)
    unknown = set(answers) - {grade_id(c) for c in nb.cells if is_answer(c)}
    assert not unknown, f"samples name answer cells the notebook does not have: {unknown}"
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)].strip("\n")
    return nb


@pytest.fixture(scope="session")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Graded]:
    """Graded results keyed by (student, assignment) for solutions, blanks and samples."""
    root = tmp_path_factory.mktemp("submissions")
    subs = []

    def add(student: str, assignment: course.Assignment, nb: nbformat.NotebookNode) -> None:
        path = root / student / assignment.id / f"{assignment.id}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        subs.append(Submission(student, assignment, path))

    copies = {}
    for assignment in course.assignments().values():
        if not selected(assignment.id):
            continue
        copies[assignment.id] = SourceCopies.load(assignment)
        add("solution", assignment, copies[assignment.id].source)
        add("blank", assignment, copies[assignment.id].release)
    for sample in load_samples():
        if not selected(sample.assignment):
            continue
        assignment = course.assignment(sample.assignment)
        add(
            f"sample-{sample.name}",
            assignment,
            filled_in(copies[assignment.id].release, sample.answers),
        )
    # Confined as on a grading machine, where this one allows it (a missing file in the
    # sandbox must fail here, not in a student's grade).
    isolation = Isolation() if isolation_available()[0] else None
    graded = grade_many(subs, copies, LIMITS, workers=4, isolation=isolation)
    return {(g.student, g.assignment): g for g in graded}
