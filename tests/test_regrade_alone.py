"""A notebook that ran out of time while others were being graded is graded again, alone,
before it is scored: a busy machine never costs a student marks."""

from __future__ import annotations

import copy

import nbformat

from autograder import course
from autograder.assemble import is_answer
from autograder.execute import Limits
from autograder.grading import SourceCopies, Submission, grade_many

WELCOME = course.assignment("00-welcome")
COPIES = SourceCopies.load(WELCOME)
# A cell that always runs past the cell limit, then a correct answer: the slow cell is set
# aside, and the answer still counts. Whether the machine was busy cannot be faked in a
# test, so the slow cell is slow every time: it shows the retry happens, and alone.
SLOW_THEN_CORRECT = """
import time
time.sleep(120)
"""
CORRECT = """
import asyncio

async def greet(name):
    await asyncio.sleep(0.01)
    return f"Hello, {name}!"
"""


def submission(tmp_path, student: str, first_cell: str | None) -> Submission:
    nb = copy.deepcopy(COPIES.release)
    index = next(i for i, c in enumerate(nb.cells) if is_answer(c))
    nb.cells[index].source = CORRECT
    if first_cell:
        nb.cells.insert(index, nbformat.v4.new_code_cell(first_cell))
    path = tmp_path / student / WELCOME.id / f"{WELCOME.id}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return Submission(student, WELCOME, path)


def test_timed_out_in_company_is_graded_again_alone(tmp_path):
    subs = [
        submission(tmp_path, "slow", SLOW_THEN_CORRECT),
        submission(tmp_path, "quick", None),
    ]
    limits = Limits(cell_seconds=8, notebook_seconds=120)
    results = {g.student: g for g in grade_many(subs, {WELCOME.id: COPIES}, limits, workers=2)}
    assert results["quick"].score == 4  # (on a loaded machine it may be regraded too)
    slow = results["slow"]
    assert slow.score == 4, slow.tests
    assert any("Graded again, alone" in n and "1 other notebook" in n for n in slow.notes)


def test_timed_out_alone_is_not_graded_twice(tmp_path):
    subs = [submission(tmp_path, "slow", SLOW_THEN_CORRECT)]
    limits = Limits(cell_seconds=8, notebook_seconds=120)
    (slow,) = grade_many(subs, {WELCOME.id: COPIES}, limits, workers=2)
    assert slow.score == 4
    assert not any("Graded again" in n for n in slow.notes)
