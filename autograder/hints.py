"""Hints that follow the failing test: which ladder to climb, how far, and how to print it.

Each assignment in ``autograder/exercises.toml`` has hint *ladders*: one per exercise
and one per misconception its tests detect. A ladder has three rungs: the idea and the
section of the notebook to reread; the approach in words; at most a fragment of code.

``autograder check`` shows the first rung of the ladder that belongs to the first
failing test: the misconception its message names (``topic: ...``), else the exercise
the test belongs to. ``--hint`` climbs that ladder one rung. How far each ladder was
climbed is remembered per notebook file, so two copies of a notebook, or two
exercises of one notebook, never share a counter; ``--hint-reset`` forgets it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from autograder import course
from autograder.course import Assignment, Ladder

# The same marker the course's checks write (concurrent_burgers.testing.fail); the
# grader does not import the course library, so it is repeated here.
_TOPIC = re.compile(r"\(topic: ([\w-]+)\)")


def ladder_for(assignment: Assignment, test_id: str, message: str) -> Ladder | None:
    """The ladder a failing test leads to: its misconception's, else its exercise's."""
    topic = _TOPIC.search(message)
    if topic and topic.group(1) in assignment.ladders:
        return assignment.ladders[topic.group(1)]
    exercises = [key for key in assignment.ladders if test_id.startswith(key)]
    return assignment.ladders[max(exercises, key=len)] if exercises else None


def _load() -> dict[str, dict[str, int]]:
    try:
        data = json.loads(course.HINT_STATE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(state: dict[str, dict[str, int]]) -> None:
    course.HINT_STATE.parent.mkdir(parents=True, exist_ok=True)
    course.HINT_STATE.write_text(json.dumps(state, indent=1, sort_keys=True))


def _key(notebook: Path) -> str:
    return str(notebook.resolve())


def reset(notebook: Path) -> None:
    """Forget how far every ladder of this notebook was climbed."""
    state = _load()
    if state.pop(_key(notebook), None) is not None:
        _save(state)


def show(notebook: Path, ladder: Ladder, climb: bool) -> str:
    """The rung to show now: the first, or (with ``climb``) the one after the last shown."""
    state = _load()
    climbed = state.setdefault(_key(notebook), {})
    shown = climbed.get(ladder.key, 0)
    index = min(shown, len(ladder.rungs) - 1) if climb else 0
    climbed[ladder.key] = max(shown, index + 1)
    _save(state)
    head = f"Hint {index + 1} of {len(ladder.rungs)} ({ladder.title}): "
    return wrap(head + ladder.rungs[index])


# A code span (`...`) is never split across lines; other text breaks at spaces.
_TOKEN = re.compile(r"`[^`]*`\S*|\S+")


def wrap(text: str, width: int = 88, indent: str = "  ") -> str:
    """Fill ``text`` to ``width`` columns without ever breaking inside a word or code span."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _TOKEN.findall(paragraph):
            candidate = f"{line} {token}" if line else token
            if line and len(candidate) > width:
                lines.append(line)
                line = indent + token
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)
