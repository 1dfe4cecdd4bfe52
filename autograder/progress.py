"""What `autograder grade` shows while it works, and the line it ends with.

On a terminal: a live bar (tqdm: counts, elapsed time, rate and ETA, redrawn in place,
one small dependency-free library) with each graded notebook printed above it. Into a
file or a pipe (CI logs, ``| tee``): one plain line per notebook, nothing redrawn.
``quiet``: nothing but the summary.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from autograder.grading import Graded


class Progress:
    def __init__(self, total: int, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.results: list[Graded] = []
        live = not quiet and self.stream.isatty()
        self.bar = (
            tqdm(total=total, unit="notebook", file=self.stream, dynamic_ncols=True)
            if live
            else None
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def graded(self, graded: Graded) -> None:
        """Count one result, and show it unless quiet."""
        self.results.append(graded)
        line = (
            f"{graded.student:>20}  {graded.assignment:<22} "
            f"{graded.score:g}/{graded.max_score:g}  ({graded.seconds:.1f} s)"
        )
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        elif not self.quiet:
            print(line, file=self.stream, flush=True)

    def summary(self, not_graded: int = 0) -> str:
        """One line: graded, set aside, not graded, full marks, the slowest notebook."""
        results = self.results
        full = sum(1 for g in results if g.score == g.max_score)
        set_aside = sum(1 for g in results if g.set_aside)
        parts = [
            f"graded {len(results)} notebook(s)",
            f"{full} at full marks",
            f"{set_aside} with cells set aside (hung or crashed)",
            f"{not_graded} file(s) not graded",
        ]
        if results:
            slowest = max(results, key=lambda g: g.seconds)
            parts.append(
                f"slowest: {slowest.student}/{slowest.assignment} ({slowest.seconds:.1f} s)"
            )
        return "; ".join(parts)
