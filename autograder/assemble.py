"""Turn a student's notebook, in whatever state, into the notebook that is graded.

One rule covers deleted, duplicated, reordered and retyped cells and a changed
kernelspec: the instructor's notebook (``solutions/``) is the skeleton. Each cell of
it is taken, in its order, as follows:

* an answer cell (nbgrader ``solution``): the student's text for that grade id (the
  last copy if they duplicated it); if they deleted it, the untouched stub, unless
  their own cells define what the stub defines (they retyped it elsewhere): then their
  code stands and the answer cell stays empty;
* a test or read-only cell: the instructor's version, hidden tests included;
* any other cell (a demonstration): the student's version when they kept it (same
  cell id), else the instructor's.

Cells the student added are kept, each after the known cell it followed. Cell types,
nbgrader metadata and the kernelspec always come from the instructor's notebook.

An answer that does not even parse is reported (:attr:`Assembly.syntax_errors`), so that
no test can pass or fail for a reason other than the syntax error.
"""

from __future__ import annotations

import ast
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
    # "answer cell `greet`, line 3: invalid syntax" for each answer that does not parse.
    syntax_errors: list[str] = field(default_factory=list)


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

    theirs = set().union(*(defined_names(_text(c)) for cs in added.values() for c in cs))
    retyped = [
        key
        for key in answer_ids - set(kept)
        if theirs >= (stub_names := defined_names(_text(stubs[key]))) and stub_names
    ]
    cells = list(added.get(_TOP, []))
    for cell in source.cells:
        key = _key(cell)
        if is_answer(cell):
            student_cell = kept.get(key)
            chosen = copy.deepcopy(cell)
            if student_cell is not None:
                chosen.source = _text(student_cell)
            elif key in retyped:
                chosen.source = "# (this answer cell was deleted; your own cells define it)"
            else:
                chosen.source = _text(stubs[key])
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
    for key in sorted(kept.keys() & answer_ids):
        problem = _syntax_error(_text(kept[key]))
        if problem:
            assembly.syntax_errors.append(f"answer cell `{key}`, {problem}")
    if retyped:
        found += len(retyped)
        assembly.notes.append(
            f"The answer cell(s) {', '.join(sorted(retyped))} were deleted, but your own cells "
            "define the same names: your code was graded."
        )
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


def _python(text: str) -> str:
    """A cell's text as the kernel runs it: IPython's magics and ``!`` lines made Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(text)


def _parse(text: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(_python(text), "<answer>", "exec", flags=flags, dont_inherit=True)


def _syntax_error(text: str) -> str:
    """Where and why a cell does not parse, or "" when it does."""
    try:
        _parse(text)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError) as exc:  # a NUL byte; absurdly deep nesting
        return str(exc)
    return ""


def defined_names(text: str) -> set[str]:
    """The names a cell defines at its top level (functions, classes, assignments)."""
    try:
        tree = _parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names
