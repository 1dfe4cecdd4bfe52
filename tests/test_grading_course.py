"""Both directions, for every assignment: solutions earn full marks, student copies zero,
and each sample wrong answer earns exactly what its misconception deserves."""

from __future__ import annotations

import pytest

from autograder import course
from autograder.assemble import nbgrader_meta
from autograder.grading import Graded
from tests.conftest import load_samples, selected

ASSIGNMENTS = [a for a in course.assignments() if selected(a)]
SAMPLES = [s for s in load_samples() if selected(s.assignment)]


def _report(g: Graded) -> str:
    lines = [f"{g.student}/{g.assignment}: {g.score}/{g.max_score} {g.notes}"]
    lines += [f"  {t.id}: {t.points}/{t.max_points} {t.message}" for t in g.tests]
    return "\n".join(lines)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_earns_full_marks(batch, assignment):
    """The instructor's notebook passes every test of its own assignment."""
    g = batch[("solution", assignment)]
    assert g.max_score > 0
    assert g.score == g.max_score, _report(g)
    assert not g.notes, _report(g)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_runs_without_unexpected_errors(batch, assignment):
    """Only cells tagged raises-exception may show an error when the solution runs."""
    g = batch[("solution", assignment)]
    for index, cell in enumerate(g.notebook.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell {index} failed: {errors[0].ename}: {errors[0].evalue}"
        stderr = [o.text for o in cell.outputs if o.get("name") == "stderr"]
        assert not stderr or nbgrader_meta(cell) == {}, f"graded cell {index} wrote to stderr"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_copy_earns_zero_and_grades_cleanly(batch, assignment):
    """The student copy as shipped earns 0 on every test, each with a readable reason."""
    g = batch[("blank", assignment)]
    assert g.score == 0, _report(g)
    assert not g.notes, _report(g)
    for t in g.tests:
        assert "not written yet" in t.message, _report(g)


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s.assignment}:{s.name}" for s in SAMPLES])
def test_sample_submission_scores_as_expected(batch, sample):
    """Each sample earns its expected score, failing exactly the tests its mistake breaks."""
    g = batch[(f"sample-{sample.name}", sample.assignment)]
    failing = tuple(t.id for t in g.tests if t.points < t.max_points)
    if sample.expect_score is not None:
        assert g.score == sample.expect_score, _report(g)
    else:
        assert g.score < g.max_score, _report(g)
    assert failing == sample.expect_failing, _report(g)
    if sample.expect_message:
        messages = " ".join(t.message for t in g.tests if t.id in failing)
        assert sample.expect_message in messages, _report(g)
