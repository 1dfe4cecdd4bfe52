"""Regenerate a student copy (``notebooks/<id>/``) from its source (``solutions/<id>/``).

nbgrader's ``generate_assignment`` does the work (it strips solutions and hidden tests,
locks cells and records checksums in the gradebook); this module runs it with the
course's configuration and normalises the result, so a fresh release is byte-for-byte
what is committed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

from autograder.assemble import KERNELSPEC
from autograder.course import AUTOGRADER, WORK, Assignment, UserError


def nbgrader_api() -> NbGraderAPI:
    """nbgrader's API, configured from ``autograder/nbgrader_config.py``."""
    WORK.mkdir(exist_ok=True)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(AUTOGRADER)).load_config()
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir, config=config)


def normalise(path: Path) -> None:
    """No outputs, no execution counts, one standard kernelspec, stable JSON."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.validate(nb)
    nbformat.write(nb, path)


def release(assignment: Assignment, api: NbGraderAPI | None = None) -> Path:
    """Generate the student copy of ``assignment``; return its path."""
    if not assignment.source.exists():
        raise UserError(f"no instructor notebook at {assignment.source}")
    result = (api or nbgrader_api()).generate_assignment(assignment.id, force=True, create=True)
    if not result["success"]:
        raise UserError(f"nbgrader could not generate {assignment.id}:\n{result.get('error')}")
    normalise(assignment.release)
    return assignment.release
