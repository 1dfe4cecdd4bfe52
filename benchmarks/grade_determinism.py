"""Grade the same submissions again and again with every core busy: verdicts must not move.

    .venv/bin/python benchmarks/grade_determinism.py --runs 10
    .venv/bin/python benchmarks/grade_determinism.py --runs 2 --only 00-welcome \
        --students 'solution,blank,sample-blocking-event-wait,sample-*-2s'      # make test

The set is every assignment's solution, its student copy, its sample submissions and its
boundary variants (tests/samples: ``[[boundary]]`` entries that block or sleep for 0.5,
1, 2, 5 and 30 s). While grading runs, one busy-looping process per core competes for
the CPU. Exits 1 and shows the difference if any test's points or message differ
between runs.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import course  # noqa: E402
from benchmarks import timed_grade  # noqa: E402
from tests.conftest import filled_in, load_boundaries, load_samples  # noqa: E402


def burn() -> None:
    while True:
        pass


def build(root: Path, only: list[str], students: list[str]) -> int:
    count = 0

    def add(student: str, assignment_id: str, nb: nbformat.NotebookNode) -> None:
        nonlocal count
        if students and not any(fnmatch.fnmatchcase(student, s) for s in students):
            return
        path = root / student / assignment_id / f"{assignment_id}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        count += 1

    for a in course.assignments().values():
        if only and a.id not in only:
            continue
        add("solution", a.id, nbformat.read(a.source, as_version=4))
        add("blank", a.id, nbformat.read(a.release, as_version=4))
        release = nbformat.read(a.release, as_version=4)
        for sample in load_samples() + load_boundaries():
            if sample.assignment == a.id:
                add(f"sample-{sample.name}", a.id, filled_in(release, sample.answers))
    return count


def verdicts(out: Path) -> dict[str, list[tuple[float, str]]]:
    """Each notebook's tests as (points, message)."""
    data = json.loads((out / "grades.json").read_text())
    return {
        f"{g['student']}/{g['assignment']}": [(t["points"], t["message"]) for t in g["tests"]]
        for g in data
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated assignment ids")
    parser.add_argument(
        "--students",
        default="",
        help="comma-separated names or patterns (solution, blank, sample-NAME, sample-*-2s)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-busy", action="store_true", help="do not load the cores")
    args = parser.parse_args()
    only = [a for a in args.only.split(",") if a]

    work = Path(tempfile.mkdtemp(prefix="determinism-"))
    students = [s for s in args.students.split(",") if s]
    n = build(work / "submissions", only, students)
    if not n:
        parser.error("no submission matches --only and --students")
    burners = []
    if not args.no_busy:
        burners = [
            multiprocessing.Process(target=burn, daemon=True) for _ in range(os.cpu_count() or 2)
        ]
        for b in burners:
            b.start()
    first: dict[str, list[tuple[float, str]]] | None = None
    seconds = []
    differences = 0
    try:
        for run in range(args.runs):
            out = work / f"run-{run}"
            took = timed_grade(work / "submissions", out, args.workers)
            seconds.append(took)
            result = verdicts(out)
            if first is None:
                first = result
            changed = sorted(k for k in first if result.get(k) != first[k])
            differences += len(changed)
            print(
                f"run {run + 1}/{args.runs}: {n} notebooks in {took:.1f} s, "
                f"{len(changed)} differ from run 1",
                flush=True,
            )
            for key in changed:
                print(f"   {key}: {first[key]} -> {result.get(key)}")
    finally:
        for b in burners:
            b.kill()
    assert first is not None
    for key in sorted(first):
        score = sum(points for points, _ in first[key])
        print(f"   {key}: {score:g}")
    print(
        f"{len(first)} notebooks x {args.runs} runs, {min(seconds):.0f}-{max(seconds):.0f} s a run"
    )
    print(
        "identical verdicts and messages in every run"
        if not differences
        else f"{differences} differences"
    )
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
