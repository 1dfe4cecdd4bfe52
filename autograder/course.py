"""Where things are: the course folders, the assignment ids and the exercise manifest.

Every other module of the grader asks this one; it imports nothing of theirs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUTOGRADER = ROOT / "autograder"
PACKAGE = ROOT / "concurrent_burgers"  # the course helpers notebooks import
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
WORK = ROOT / ".grading"
MANIFEST = AUTOGRADER / "exercises.toml"
# Which hint `autograder check --hint` showed last, per assignment.
HINT_STATE = Path(os.environ.get("AUTOGRADER_HINT_STATE", WORK / "hints.json"))


class UserError(Exception):
    """A problem with what the user asked for, reported as one clear line."""


@dataclass(frozen=True)
class Assignment:
    """One entry of the exercise manifest (``autograder/exercises.toml``)."""

    id: str
    title: str
    objectives: tuple[str, ...]
    contract: str
    hints: tuple[str, ...]

    @property
    def source(self) -> Path:
        """The instructor's notebook, with solutions and hidden tests."""
        return SOLUTIONS / self.id / f"{self.id}.ipynb"

    @property
    def release(self) -> Path:
        """The student copy generated from :attr:`source`."""
        return NOTEBOOKS / self.id / f"{self.id}.ipynb"


@cache
def assignments() -> dict[str, Assignment]:
    """Every assignment in the manifest, by id, in course order."""
    with MANIFEST.open("rb") as f:
        data = tomllib.load(f)
    found = {}
    for entry in data["assignment"]:
        found[entry["id"]] = Assignment(
            id=entry["id"],
            title=entry["title"],
            objectives=tuple(entry["objectives"]),
            contract=entry["contract"].strip(),
            hints=tuple(entry["hints"]),
        )
    return found


def assignment(assignment_id: str) -> Assignment:
    """The assignment called ``assignment_id``, or a :class:`UserError` naming the known ones."""
    try:
        return assignments()[assignment_id]
    except KeyError:
        known = ", ".join(assignments())
        raise UserError(f"unknown assignment {assignment_id!r}; the course has: {known}") from None
