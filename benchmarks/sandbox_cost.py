"""What does confinement cost per notebook? Kernel start and a whole grading, with and without.

    .venv/bin/python benchmarks/sandbox_cost.py              # 10 rounds of each
    .venv/bin/python benchmarks/sandbox_cost.py --rounds 20 --assignment 01-waiting

One notebook at a time, confined and unconfined runs alternating (so a busy neighbour
slows both alike). Prints the median and the spread of:

* a kernel start: a fresh kernel runs one empty cell and is killed;
* a grading: the assignment's solution graded from scratch (its own kernel, all tests);
* what the other design would have paid on top (see :mod:`autograder.sandbox`): a fresh
  Python inside the sandbox importing the notebook client, against one that imports nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import course, sandbox  # noqa: E402
from autograder.execute import Limits, run_notebook  # noqa: E402
from autograder.grading import (  # noqa: E402
    Isolation,
    SourceCopies,
    Submission,
    grade_in_this_process,
    isolation_available,
)


def _seconds(work: Callable[[], object]) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


def _report(name: str, times: dict[str, list[float]]) -> None:
    line = [f"{name:<34}"]
    for how, values in times.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        line.append(f"{how} {statistics.median(values):5.2f} s ({q[0]:.2f}-{q[2]:.2f})")
    base, confined = (statistics.median(v) for v in times.values())
    line.append(f"cost {confined - base:+.2f} s")
    print("  ".join(line), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="00-welcome")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    ok, how = isolation_available()
    if not ok:
        print(f"cannot measure: {how}")
        return 1
    assignment = course.assignment(args.assignment)
    copies = SourceCopies.load(assignment)
    limits = Limits()
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    runs = Path(tempfile.mkdtemp(prefix="sandbox-cost-"))

    def start(confined: bool) -> None:
        workdir = Path(tempfile.mkdtemp(dir=runs))
        jail = sandbox.Jail(workdir, (course.PACKAGE,)) if confined else None
        run_notebook(empty, workdir, limits, jail=jail)

    def grade(confined: bool) -> None:
        sub = Submission("solution", assignment, assignment.source)
        isolation = Isolation() if confined else None
        graded = grade_in_this_process(sub, copies, limits, isolation=isolation, runs=runs)
        assert graded.score == graded.max_score, graded.notes

    def python_inside(imports: str) -> None:
        jail = sandbox.Jail(Path(tempfile.mkdtemp(dir=runs)))
        argv = jail.command([sys.executable, "-c", imports])
        subprocess.run(argv, check=True, env=jail.environment(dict(os.environ)))

    print(f"{args.rounds} rounds, one at a time; median (quartiles)", flush=True)
    start(True), start(False)  # warm the file cache
    pairs = [
        ("kernel start + empty cell", start, (False, True), ("plain", "confined")),
        (f"grading {assignment.id}'s solution", grade, (False, True), ("plain", "confined")),
        (
            "Python in bwrap: +nbclient imports",
            python_inside,
            ("pass", "import nbclient, nbformat, jupyter_client"),
            ("bare", "client"),
        ),
    ]
    for name, work, variants, labels in pairs:
        times: dict[str, list[float]] = {label: [] for label in labels}
        for _ in range(args.rounds):
            for variant, label in zip(variants, labels, strict=True):
                times[label].append(_seconds(lambda w=work, v=variant: w(v)))
        _report(name, times)
    shutil.rmtree(runs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
