"""Timings and stability checks for the grader (run as scripts; see each module's doc)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def timed_grade(submissions: Path, out: Path, workers: int) -> float:
    """Grade ``submissions`` with the instructors' command; return the wall seconds."""
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            str(submissions),
            "--out",
            str(out),
            "--workers",
            str(workers),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started
