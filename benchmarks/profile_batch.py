"""Where does grading time go? One notebook at a time, every assignment's solution.

    .venv/bin/python benchmarks/profile_batch.py                  # every assignment
    .venv/bin/python benchmarks/profile_batch.py --only 04-await,07-blocking

For each notebook, from the cells' own timestamps (nbclient records them): the time
before the first cell runs (the child process, assembly, kernel start, the grader's
guard cell), the course's demonstration cells, the test cells, the time after the last cell (kernel
shutdown, scoring, sending the result back), and the gradebook write that follows in
the supervisor. Run it on a quiet machine; it grades one notebook at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AUTOGRADER_WORK", tempfile.mkdtemp(prefix="profile-work-"))
os.environ.setdefault("JUPYTER_CONFIG_DIR", str(ROOT / "autograder"))
sys.path.insert(0, str(ROOT))

from autograder import course, gradebook  # noqa: E402
from autograder.assemble import is_test  # noqa: E402
from autograder.execute import Limits  # noqa: E402
from autograder.grading import (  # noqa: E402
    Isolation,
    SourceCopies,
    Submission,
    grade_many,
    isolation_available,
)


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def profile(assignment: course.Assignment) -> dict[str, float]:
    copies = SourceCopies.load(assignment)
    sub = Submission("solution", assignment, assignment.source)
    isolation = Isolation() if isolation_available()[0] else None
    started = time.time()
    (graded,) = grade_many([sub], {assignment.id: copies}, Limits(), 1, isolation)
    finished = time.time()
    spans = {"demonstrations": 0.0, "tests": 0.0}
    first = last = None
    for cell in graded.notebook.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
            continue
        begin, end = _moment(timing["iopub.execute_input"]), _moment(timing["shell.execute_reply"])
        first = begin if first is None else first
        last = end
        spans["tests" if is_test(cell) else "demonstrations"] += end - begin
    gradebook.record_assignment(assignment)  # once per assignment and batch: not counted
    recorded = time.time()
    gradebook.record(graded, sub)
    recording = time.time() - recorded
    return {
        "total": finished - started,
        "before first cell": (first or finished) - started,
        **spans,
        "after last cell": finished - (last or finished),
        "gradebook": recording,
        "score": graded.score,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated assignment ids")
    args = parser.parse_args()
    only = [a for a in args.only.split(",") if a]
    columns = [
        "total",
        "before first cell",
        "demonstrations",
        "tests",
        "after last cell",
        "gradebook",
    ]
    print(f"{'assignment':<20}" + "".join(f"{c:>18}" for c in columns))
    for assignment in course.assignments().values():
        if only and assignment.id not in only:
            continue
        row = profile(assignment)
        print(f"{assignment.id:<20}" + "".join(f"{row[c]:>17.2f}s" for c in columns), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
