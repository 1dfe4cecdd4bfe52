"""Grading twice with both cores busy gives identical verdicts and messages
(benchmarks/grade_determinism.py runs the long version).

The suite's share is the notebooks most exposed to a race between two clocks: the
answers that block for 2 s, as long as the probes' fallback, and one that blocks on an
event that is never set."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "grade_determinism.py"


def test_same_scores_with_cores_busy():
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--runs",
            "2",
            "--only",
            "00-welcome",
            "--students",
            "solution,blank,sample-blocking-event-wait,sample-*-2s",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical verdicts and messages in every run" in result.stdout
