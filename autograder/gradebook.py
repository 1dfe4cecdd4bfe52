"""nbgrader's gradebook is the record of grades: formgrader, ``nbgrader export`` and
nbgrader's feedback tools read what this module writes there.

* :func:`record_assignment` puts an assignment, its notebook and its graded cells (ids,
  points) in the gradebook, through nbgrader's own ``generate_assignment``;
* :func:`record` stores one graded submission the way ``nbgrader autograde`` would: the
  student, the submission, each test's score (nbgrader's ``SaveAutoGrades``, which keeps
  an instructor's manual grade), the submitted notebook under ``submitted/`` and the
  executed one under ``autograded/``, plus what nbgrader has no place for (each test's
  message, the notes) in ``records/<assignment>/<student>.json``;
* :func:`class_results` reads the whole class back, manual grades included: ``grades.csv``
  and ``grades.json`` are views of it.

Only the supervisor calls these, one submission at a time: SQLite has one writer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades
from sqlalchemy.exc import SAWarning

from autograder.assemble import grade_id, is_test
from autograder.course import WORK, Assignment, UserError
from autograder.grading import Graded, Submission, TestResult
from autograder.release import nbgrader_api

SUBMITTED = WORK / "submitted"
AUTOGRADED = WORK / "autograded"
RECORDS = WORK / "records"
# The error a failed test shows in the recorded notebook when it raised nothing itself
# (it wrote to stderr, or never reached its end), so that nbgrader reads the same verdict.
VERDICT = "TestFailed"


@cache
def db_url() -> str:
    return nbgrader_api().coursedir.db_url


def record_assignment(assignment: Assignment) -> None:
    """Put ``assignment`` and its graded cells in the gradebook, as a release would.

    nbgrader's ``generate_assignment`` does it; its student copy goes to a scratch folder,
    so ``notebooks/`` (where self-learners may be working) is never touched.
    """
    with tempfile.TemporaryDirectory(prefix="autograder-release-") as scratch:
        api = nbgrader_api(release_to=Path(scratch))
        result = api.generate_assignment(assignment.id, force=True, create=True)
    if not result["success"]:
        log = result.get("log") or result.get("error") or ""
        if "submissions associated" in log:
            raise UserError(
                f"the graded cells of {assignment.id} changed since students were graded; "
                "nbgrader keeps a gradebook's cells fixed once it holds submissions"
            )
        raise UserError(f"nbgrader could not record {assignment.id} in the gradebook:\n{log}")


def record(graded: Graded, sub: Submission, force: bool = False) -> None:
    """Store one graded submission, as ``nbgrader autograde`` would have.

    ``graded.notebook`` is the executed notebook (None when nothing could run). An
    instructor's manual grade on a test survives (nbgrader's rule: it takes precedence
    over the automatic score), unless ``force`` discards it.
    """
    assignment, student = sub.assignment.id, graded.student
    timestamp = _timestamp(sub.path.parent)
    with Gradebook(db_url()) as gb, warnings.catch_warnings():
        # nbgrader's add_submission trips SQLAlchemy's autoflush warnings; harmless.
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(student)
        extra = {"timestamp": timestamp} if timestamp else {}
        gb.update_or_create_submission(assignment, student, **extra)
    nb = _with_verdicts(graded)
    _keep_files(graded, sub, nb)
    if nb is not None:
        resources = {"notebook": assignment, "assignment": assignment, "student": student}
        SaveAutoGrades().preprocess(nb, {"nbgrader": {**resources, "db_url": db_url()}})
    with Gradebook(db_url()) as gb:
        points = {t.id: t.points for t in graded.tests}
        for grade in gb.find_submission_notebook(assignment, assignment, student).grades:
            # Our verdict is the automatic score, also where nbgrader saw nothing to score
            # (a submission that could not run at all).
            grade.auto_score = points.get(grade.cell.name, 0.0)
            if force:
                grade.manual_score = None
            grade.needs_manual_grade = False
        gb.db.commit()


def _timestamp(folder: Path) -> str | None:
    """The submission time nbgrader wrote beside a collected notebook, if any."""
    stamp = folder / "timestamp.txt"
    try:
        text = stamp.read_text().strip()
    except OSError:
        return None
    return text or None


def _keep_files(graded: Graded, sub: Submission, nb: NotebookNode | None) -> None:
    """The submission under ``submitted/``, the executed notebook under ``autograded/``.

    As with ``nbgrader autograde``, the submission's other files come along to both,
    nbgrader's own among them (``timestamp.txt``; ``submission_secret.txt``, which
    ``release_feedback`` needs).
    """
    submitted = SUBMITTED / graded.student / sub.assignment.id
    if submitted.resolve() != sub.path.parent.resolve():
        _refill(submitted, sub.path.parent)
        if sub.path.is_file():
            shutil.copy2(sub.path, submitted / f"{sub.assignment.id}.ipynb")
    autograded = AUTOGRADED / graded.student / sub.assignment.id
    _refill(autograded, sub.path.parent)
    if nb is not None:
        nbformat.write(nb, autograded / f"{sub.assignment.id}.ipynb")
    record = RECORDS / sub.assignment.id / f"{graded.student}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(graded.seconds, 1),
                "notes": graded.notes,
                "tests": [t.__dict__ for t in graded.tests],
            },
            indent=1,
        )
    )


def _refill(folder: Path, source: Path) -> None:
    """``folder`` emptied, then given the files (not notebooks) that lie in ``source``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for item in source.iterdir() if source.is_dir() else []:
        if item.is_file() and item.suffix != ".ipynb" and item.stat().st_size < 10 * 1024**2:
            shutil.copy2(item, folder / item.name)


def _with_verdicts(graded: Graded) -> NotebookNode | None:
    """The executed notebook, where each failed test shows why as an error output."""
    if graded.notebook is None:
        return None
    failed = {t.id: t.message for t in graded.tests if t.points < t.max_points}
    nb = nbformat.from_dict(graded.notebook)
    for cell in nb.cells:
        if is_test(cell) and grade_id(cell) in failed:
            errors = [
                o
                for o in cell.get("outputs", [])
                if o.output_type == "error" or o.get("name") == "stderr"
            ]
            if not errors:
                cell.outputs.append(
                    nbformat.v4.new_output(
                        "error", ename=VERDICT, evalue=failed[grade_id(cell)], traceback=[]
                    )
                )
    return nb


def class_results() -> list[Graded]:
    """Every recorded submission, with the gradebook's scores (an instructor's override
    included) and the messages and notes the tests left."""
    results = []
    with Gradebook(db_url()) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                student = submission.student.id
                detail = _read_record(assignment.name, student)
                messages = {t["id"]: t["message"] for t in detail.get("tests", [])}
                tests = []
                for nb in submission.notebooks:
                    for grade in nb.grades:
                        tests.append(
                            TestResult(
                                grade.cell.name,
                                float(grade.score),
                                float(grade.max_score),
                                messages.get(grade.cell.name, ""),
                            )
                        )
                order = list(messages)
                tests.sort(key=lambda t: order.index(t.id) if t.id in order else len(order))
                notes = list(detail.get("notes", []))
                notes += [
                    f"{g.cell.name} was graded by hand: {g.manual_score:g} of {g.max_score:g} "
                    f"(the tests gave {g.auto_score or 0:g}); a regrade keeps it unless --force."
                    for n in submission.notebooks
                    for g in n.grades
                    if g.manual_score is not None
                ]
                results.append(Graded(student, assignment.name, tests, notes))
    return results


def _read_record(assignment_id: str, student: str) -> dict:
    try:
        return json.loads((RECORDS / assignment_id / f"{student}.json").read_text())
    except (OSError, ValueError):
        return {}
