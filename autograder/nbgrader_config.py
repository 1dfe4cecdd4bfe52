"""nbgrader's configuration for the course.

Found through JUPYTER_CONFIG_DIR=autograder (the Makefile sets it), so `nbgrader ...`,
JupyterLab's Validate button and the formgrader all see the same course.
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821

ROOT = Path(__file__).resolve().parent.parent
# Gradebook, submissions and grading files: never tracked (see autograder/course.py).
WORK = Path(os.environ.get("AUTOGRADER_WORK", ROOT / ".grading")).resolve()
WORK.mkdir(parents=True, exist_ok=True)  # SQLite creates the gradebook, but not its folder

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Relative to the root even when WORK lies elsewhere: nbgrader builds regular expressions
# from these paths that expect a relative one.
_work = os.path.relpath(WORK, ROOT)
c.CourseDirectory.submitted_directory = f"{_work}/submitted"
c.CourseDirectory.autograded_directory = f"{_work}/autograded"
c.CourseDirectory.feedback_directory = f"{_work}/feedback"
c.CourseDirectory.db_url = f"sqlite:///{WORK / 'gradebook.db'}?timeout=30"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
# A local exchange for a single machine; a JupyterHub classroom sets its shared one
# (root-owned, mode 1777) in the instructor's own nbgrader_config.py.
EXCHANGE = WORK / "exchange"
if not EXCHANGE.exists():
    EXCHANGE.mkdir()
    EXCHANGE.chmod(0o1777)  # what nbgrader expects of an exchange: anyone may drop files
c.Exchange.root = str(EXCHANGE)

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 30
c.Execute.shutdown_kernel = "immediate"
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
