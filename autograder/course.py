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
# The gradebook, nbgrader's submitted/autograded/feedback folders and the exchange: never
# tracked. AUTOGRADER_WORK moves them (the tests use a scratch one); nbgrader_config.py
# reads the same variable, so formgrader sees what `autograder grade` recorded.
WORK = Path(os.environ.get("AUTOGRADER_WORK", ROOT / ".grading")).resolve()
MANIFEST = AUTOGRADER / "exercises.toml"
# How far `autograder check --hint` climbed each hint ladder, per notebook file.
HINT_STATE = Path(os.environ.get("AUTOGRADER_HINT_STATE", WORK / "hints.json"))


class UserError(Exception):
    """A problem with what the user asked for, reported as one clear line."""


@dataclass(frozen=True)
class Ladder:
    """Progressive hints for one exercise or one misconception (see :mod:`.hints`).

    Rung 1 names the idea and the section to reread, rung 2 gives the approach in
    words, rung 3 at most a fragment of code, never the solution.
    """

    key: str
    title: str
    rungs: tuple[str, ...]


@dataclass(frozen=True)
class Assignment:
    """One entry of the exercise manifest (``autograder/exercises.toml``)."""

    id: str
    title: str
    objectives: tuple[str, ...]
    contract: str
    ladders: dict[str, Ladder]

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
    common = data.get("ladder", {})  # misconceptions every notebook can meet
    found = {}
    for entry in data["assignment"]:
        found[entry["id"]] = Assignment(
            id=entry["id"],
            title=entry["title"],
            objectives=tuple(entry["objectives"]),
            contract=entry["contract"].strip(),
            ladders={
                key: Ladder(key, ladder["title"], tuple(ladder["rungs"]))
                for key, ladder in {**common, **entry.get("ladder", {})}.items()
            },
        )
    return found


def assignment(assignment_id: str) -> Assignment:
    """The assignment called ``assignment_id``, or a :class:`UserError` naming the known ones."""
    try:
        return assignments()[assignment_id]
    except KeyError:
        known = ", ".join(assignments())
        raise UserError(f"unknown assignment {assignment_id!r}; the course has: {known}") from None
