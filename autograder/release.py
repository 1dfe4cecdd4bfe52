"""Regenerate a student copy (``notebooks/<id>/``) from its source (``solutions/<id>/``).

nbgrader's ``generate_assignment`` does the work (it strips solutions and hidden tests,
locks cells and records checksums in the gradebook); this module runs it with the
course's configuration and normalises the result, so a fresh release is byte-for-byte
what is committed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

from autograder.assemble import KERNELSPEC
from autograder.course import AUTOGRADER, ROOT, Assignment, UserError


def nbgrader_api(root: Path = ROOT, release_to: Path | None = None) -> NbGraderAPI:
    """nbgrader's API, configured from ``autograder/nbgrader_config.py``.

    ``root`` moves the whole course (solutions, release folder, gradebook) elsewhere;
    the tests use it to regenerate the student copies in a scratch folder.
    ``release_to`` sends student copies to another folder than ``notebooks/``.
    """
    # nbgrader runs the `alembic` command to create a gradebook: make this environment's
    # tools visible even when the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(AUTOGRADER)).load_config()
    if root != ROOT:
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.db_url = f"sqlite:///{root / '.grading' / 'gradebook.db'}"
        (root / ".grading").mkdir(exist_ok=True)
    if release_to is not None:
        config.CourseDirectory.release_directory = os.path.relpath(release_to, root)
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


def release(assignment: Assignment, root: Path = ROOT) -> Path:
    """Generate the student copy of ``assignment`` under ``root``; return its path."""
    source = root / assignment.source.relative_to(ROOT)
    if not source.exists():
        raise UserError(f"no instructor notebook at {source}")
    result = nbgrader_api(root).generate_assignment(assignment.id, force=True, create=True)
    if not result["success"]:
        raise UserError(f"nbgrader could not generate {assignment.id}:\n{result.get('log')}")
    target = root / assignment.release.relative_to(ROOT)
    normalise(target)
    return target
