"""What `grade` prints while it works: a live bar on a terminal, plain lines elsewhere,
nothing with --quiet, and always one summary line."""

from __future__ import annotations

import io

from autograder import grading
from autograder.grading import Graded
from autograder.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def results() -> list[Graded]:
    done = Graded("ana", "01-waiting", [grading.TestResult("t", 2, 2, "")], seconds=3.0)
    hung = Graded("ben", "01-waiting", [grading.TestResult("t", 0, 2, "hung")], seconds=9.5)
    hung.set_aside = True
    return [done, hung]


def test_a_terminal_gets_a_live_bar_with_each_notebook_above_it() -> None:
    screen = Terminal()
    with Progress(2, stream=screen) as progress:
        for graded in results():
            progress.graded(graded)
    shown = screen.getvalue()
    assert "2/2" in shown and "\r" in shown  # the bar, redrawn in place
    assert "ana" in shown and "ben" in shown


def test_a_log_gets_plain_lines_and_quiet_gets_none() -> None:
    log = io.StringIO()
    with Progress(2, stream=log) as progress:
        for graded in results():
            progress.graded(graded)
    assert log.getvalue().splitlines() == [
        "                 ana  01-waiting             2/2  (3.0 s)",
        "                 ben  01-waiting             0/2  (9.5 s)",
    ]
    silent = Terminal()
    with Progress(2, quiet=True, stream=silent) as progress:
        for graded in results():
            progress.graded(graded)
    assert silent.getvalue() == ""
    assert progress.summary(not_graded=3) == (
        "graded 2 notebook(s); 1 at full marks; 1 with cells set aside (hung or crashed); "
        "3 file(s) not graded; slowest: ben/01-waiting (9.5 s)"
    )
