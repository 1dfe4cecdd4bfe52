"""Hint ladders: one per exercise and per misconception, three rungs, never the answer."""

from __future__ import annotations

import json
import re

import pytest

from autograder import course, hints
from autograder.assemble import grade_id, is_answer, is_test

ASSIGNMENTS = list(course.assignments().values())
_TOPIC_IN_SOURCE = re.compile(r"topic=\"([\w-]+)\"")
_TESTING = (course.ROOT / "concurrent_burgers" / "testing.py").read_text()


def _source(assignment):
    return json.loads(assignment.source.read_text())


def _solution_lines(assignment) -> list[str]:
    """Every meaningful line between BEGIN and END SOLUTION, whitespace squeezed."""
    lines = []
    for cell in _source(assignment)["cells"]:
        text = "".join(cell["source"])
        for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", text, re.S):
            for line in block.splitlines():
                squeezed = " ".join(line.split())
                if len(squeezed) >= 20 and not squeezed.startswith("#"):
                    lines.append(squeezed)
    return lines


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_every_ladder_has_three_rungs(assignment):
    for ladder in assignment.ladders.values():
        assert len(ladder.rungs) == 3, ladder.key
        assert all(rung.strip() for rung in ladder.rungs), ladder.key


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_every_test_leads_to_its_exercise_ladder(assignment):
    """A test id starts with the name of its exercise, which has a ladder."""
    import nbformat

    nb = nbformat.reads(assignment.source.read_text(), as_version=4)
    for cell in nb.cells:
        if is_test(cell):
            ladder = hints.ladder_for(assignment, grade_id(cell), "")
            assert ladder is not None, f"{assignment.id}: no ladder for {grade_id(cell)}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_every_topic_a_test_names_has_a_ladder(assignment):
    cells = _source(assignment)["cells"]
    topics = set(_TOPIC_IN_SOURCE.findall("".join("".join(c["source"]) for c in cells)))
    topics |= set(_TOPIC_IN_SOURCE.findall(_TESTING))
    missing = sorted(t for t in topics if t not in assignment.ladders)
    assert not missing, f"{assignment.id}: no ladder for topic(s) {missing}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_no_hint_hands_over_a_line_of_the_solution(assignment):
    rungs = [" ".join(r.split()) for ladder in assignment.ladders.values() for r in ladder.rungs]
    for line in _solution_lines(assignment):
        leaking = [r for r in rungs if line in r]
        assert not leaking, f"{assignment.id}: a hint contains the solution line {line!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_answer_cells_exist_for_each_exercise_ladder(assignment):
    """Exercise ladders are named after the answer cells' grade ids."""
    import nbformat

    nb = nbformat.reads(assignment.source.read_text(), as_version=4)
    answers = {grade_id(c) for c in nb.cells if is_answer(c)}
    tests = {grade_id(c) for c in nb.cells if is_test(c)}
    for answer in answers:
        assert any(t.startswith(answer) for t in tests), answer
        assert answer in assignment.ladders, f"{assignment.id}: no ladder for {answer}"


def test_a_named_topic_wins_over_the_exercise():
    a = course.assignment("01-waiting")
    message = "read_all blocked the event loop.\n  More help: x (topic: blocks-the-loop)"
    assert hints.ladder_for(a, "read_all_visible", message).key == "blocks-the-loop"
    assert hints.ladder_for(a, "read_all_visible", "something else").key == "read_all"


def test_wrap_never_splits_code():
    text = "Hint: use `future.set_exception, error` here " * 6
    for width in range(20, 90, 7):
        wrapped = hints.wrap(text, width)
        assert "`future.set_exception, error`" in wrapped
        for line in wrapped.splitlines():
            assert line.count("`") % 2 == 0, line


_DETAILS = re.compile(r"<details><summary>Hint (\d)</summary>\s*(.*?)\s*</details>", re.S)


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.id)
def test_notebook_hints_are_the_exercise_ladders(assignment):
    """The notebook's collapsed hints repeat its exercise ladders' rungs: one source."""
    import nbformat

    nb = nbformat.reads(assignment.source.read_text(), as_version=4)
    shown = [
        " ".join(text.split())
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for _, text in _DETAILS.findall(cell.source)
    ]
    answers = [grade_id(c) for c in nb.cells if is_answer(c)]
    expected = [" ".join(r.split()) for a in answers for r in assignment.ladders[a].rungs]
    assert shown == expected, f"{assignment.id}: the notebook's hints differ from the manifest"
