"""The repository's promises: pinned environments agree, notebooks are clean and
generated, and no student copy leaks a solution or a hidden test."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.assemble import KERNELSPEC, grade_id, is_answer, is_test
from autograder.release import release

ROOT = course.ROOT
ASSIGNMENTS = list(course.assignments().values())
IDS = [a.id for a in ASSIGNMENTS]


def _pins_from_pyproject() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return dict(_split_pin(d) for d in deps)


def _split_pin(spec: str) -> tuple[str, str]:
    name, sep, version = spec.partition("==")
    assert sep, f"{spec!r} is not pinned exactly (name==version)"
    return name.strip().lower(), version.strip()


def test_environment_yml_pins_match_pyproject():
    """environment.yml (conda, Binder) installs exactly the versions the pip route pins."""
    text = (ROOT / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+==\S+)\s*$", text, re.M)
    assert dict(_split_pin(line) for line in pip_lines) == _pins_from_pyproject()
    assert re.search(r"^\s+- -e \.$", text, re.M), "environment.yml must install the course"


def test_lock_file_agrees_with_pins():
    """requirements.lock pins every direct dependency at the same version."""
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = _split_pin(line)
            lock[re.sub(r"[-_.]+", "-", name)] = version
    for name, version in _pins_from_pyproject().items():
        assert lock.get(re.sub(r"[-_.]+", "-", name)) == version, name


def test_manifest_matches_folders():
    """Every assignment in the manifest has a source and a student copy, and no folder is extra."""
    assert sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()) == sorted(IDS)
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir() if p.is_dir()) == sorted(IDS)
    for a in ASSIGNMENTS:
        assert a.title and a.objectives and a.contract and a.ladders, a.id


def _all_notebooks() -> list[Path]:
    return sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted(
        (ROOT / "notebooks").glob("*/*.ipynb")
    )


@pytest.mark.parametrize("path", _all_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_clean(path):
    """Valid nbformat, no outputs or counts, the standard kernelspec, nbgrader metadata intact."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == KERNELSPEC
    ids = [grade_id(c) for c in nb.cells if grade_id(c)]
    assert len(ids) == len(set(ids)), "duplicate grade ids"
    assert any(is_answer(c) for c in nb.cells) and any(is_test(c) for c in nb.cells)
    for cell in nb.cells:
        assert cell.get("id"), "every cell needs an id"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "committed outputs"
        if is_test(cell):
            assert cell.source.startswith('"""'), f"{grade_id(cell)} has no docstring"
            assert cell.metadata.nbgrader.get("points", 0) > 0
            assert cell.metadata.nbgrader.get("locked") is True


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=IDS)
def test_student_copy_equals_a_fresh_release(assignment, tmp_path):
    """notebooks/ is exactly what `autograder release` generates from solutions/ today."""
    (tmp_path / "solutions").mkdir()
    shutil.copytree(assignment.source.parent, tmp_path / "solutions" / assignment.id)
    fresh = release(assignment, root=tmp_path)
    assert fresh.read_text() == assignment.release.read_text(), (
        f"{assignment.release} is stale: run `make release`"
    )


def _split_lines(source: str) -> tuple[list[str], list[str]]:
    """(lines inside solution or hidden-test blocks, lines outside), stripped."""
    hidden, public, inside = [], [], False
    for line in source.splitlines():
        if re.search(r"### BEGIN (SOLUTION|HIDDEN TESTS)", line):
            inside = True
        elif re.search(r"### END (SOLUTION|HIDDEN TESTS)", line):
            inside = False
        else:
            (hidden if inside else public).append(line.strip())
    return hidden, public


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=IDS)
def test_student_copy_leaks_no_solution_or_hidden_test(assignment):
    """No marker, and no line found only in a solution or hidden test, is in the student copy."""
    student = assignment.release.read_text()
    assert "BEGIN SOLUTION" not in student and "BEGIN HIDDEN TESTS" not in student
    source = nbformat.read(assignment.source, as_version=4)
    hidden, public = set(), set()
    for cell in source.cells:
        h, p = _split_lines(cell.source)
        hidden.update(h)
        public.update(p)
    secret = {line for line in hidden - public if len(line) > 12}
    student_lines = set()
    for cell in nbformat.read(assignment.release, as_version=4).cells:
        student_lines.update(line.strip() for line in cell.source.splitlines())
    assert not secret & student_lines, f"leaked: {sorted(secret & student_lines)[:3]}"
