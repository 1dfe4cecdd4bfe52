"""Turn a student's notebook, in whatever state, into the notebook that is graded.

One rule covers deleted, duplicated, reordered and retyped cells and a changed
kernelspec: the instructor's notebook (``solutions/``) is the skeleton. Each cell of
it is taken, in its order, as follows:

* an answer cell (nbgrader ``solution``): the student's text for that grade id (the
  last copy if they duplicated it), or the untouched stub if they deleted it;
* a test or read-only cell: the instructor's version, hidden tests included;
* any other cell (a demonstration): the student's version when they kept it (same
  cell id), else the instructor's.

Cells the student added are kept, each after the known cell it followed. Cell types,
nbgrader metadata and the kernelspec always come from the instructor's notebook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_TOP = "\0top"


@dataclass
class Assembly:
    """The notebook to grade and what the assembly noticed about the submission."""

    notebook: NotebookNode
    notes: list[str] = field(default_factory=list)


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_answer(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_test(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def _key(cell: NotebookNode) -> str | None:
    return grade_id(cell) or cell.get("id")


def _text(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def assemble(source: NotebookNode, release: NotebookNode, student: NotebookNode) -> Assembly:
    """Build the notebook to grade from the instructor's, the stub and the student's."""
    stubs = {grade_id(c): c for c in release.cells if is_answer(c)}
    source_keys = {_key(c) for c in source.cells} - {None}
    answer_ids = {grade_id(c) for c in source.cells if is_answer(c)}

    # The last copy of each answer is the answer; earlier copies count as added cells.
    last_answer: dict[str, int] = {}
    for index, cell in enumerate(student.cells):
        if grade_id(cell) in answer_ids:
            last_answer[grade_id(cell)] = index

    kept: dict[str, NotebookNode] = {}
    added: dict[str, list[NotebookNode]] = {}
    anchor = _TOP
    for index, cell in enumerate(student.cells):
        key = _key(cell)
        known = key in source_keys and key not in kept
        if key in answer_ids:
            known = last_answer[key] == index
        if known:
            kept[key] = cell
            anchor = key
        else:
            added.setdefault(anchor, []).append(_as_plain_cell(cell))

    cells = list(added.get(_TOP, []))
    for cell in source.cells:
        key = _key(cell)
        if is_answer(cell):
            student_cell = kept.get(key)
            chosen = copy.deepcopy(cell)
            chosen.source = _text(student_cell if student_cell is not None else stubs[key])
        elif nbgrader_meta(cell) or key not in kept:
            chosen = copy.deepcopy(cell)
        else:
            chosen = copy.deepcopy(cell)
            chosen.source = _text(kept[key])
        if chosen.cell_type == "code":
            chosen.outputs = []
            chosen.execution_count = None
        cells.append(chosen)
        cells.extend(added.get(key, []))

    graded = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    graded.metadata["kernelspec"] = dict(KERNELSPEC)
    found = sum(1 for a in answer_ids if a in kept)
    assembly = Assembly(graded)
    if answer_ids and not found:
        assembly.notes.append(
            "None of this assignment's answer cells were found in the submitted notebook: "
            "was it the notebook of another assignment, or were the answer cells deleted?"
        )
    elif found < len(answer_ids):
        assembly.notes.append(
            f"{len(answer_ids) - found} of {len(answer_ids)} answer cells were missing from "
            "the submission; their empty stubs were graded instead."
        )
    return assembly


def _as_plain_cell(cell: NotebookNode) -> NotebookNode:
    """A student-added cell, stripped of nbgrader metadata so it cannot pose as a test."""
    text = _text(cell)
    if cell.get("cell_type") == "code":
        return nbformat.v4.new_code_cell(text)
    if cell.get("cell_type") == "raw":
        return nbformat.v4.new_raw_cell(text)
    return nbformat.v4.new_markdown_cell(text)
