"""How fast does a class get graded? Wall time per notebook for several worker counts.

    .venv/bin/python benchmarks/grading_speed.py                 # 12 notebooks of 00-welcome
    .venv/bin/python benchmarks/grading_speed.py --copies 24 --assignment 01-waiting

Each run grades COPIES students who all submitted the solution, through the same
`autograder grade` command instructors use, and prints wall seconds per notebook.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import course  # noqa: E402
from benchmarks import timed_grade  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="00-welcome")
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    args = parser.parse_args()
    assignment = course.assignment(args.assignment)
    work = Path(tempfile.mkdtemp(prefix="grading-speed-"))
    for i in range(args.copies):
        folder = work / "submissions" / f"student{i:03d}" / assignment.id
        folder.mkdir(parents=True)
        shutil.copy(assignment.source, folder / f"{assignment.id}.ipynb")
    print(f"{args.copies} notebooks of {assignment.id}")
    for workers in [int(w) for w in args.workers.split(",")]:
        took = timed_grade(work / "submissions", work / f"out-{workers}", workers)
        print(f"workers={workers}: {took:6.1f} s in all, {took / args.copies:5.2f} s per notebook")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
