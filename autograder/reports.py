"""What grading writes: grades.csv, grades.json, feedback HTML and terminal tables."""

from __future__ import annotations

import copy
import csv
import html
import json
import re
import shutil
import sysconfig
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbgrader.preprocessors import ClearHiddenTests

from autograder import course
from autograder.assemble import is_test
from autograder.grading import Graded
from autograder.hints import wrap

_BODY = re.compile(r"<body[^>]*>")
_TITLE = re.compile(r"<title>.*?</title>", re.S)
_HEAD_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)


def write_grades(results: list[Graded], out: Path) -> None:
    """``grades.csv`` (one row per student and assignment, with its notes) and
    ``grades.json`` (per test)."""
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=lambda g: (g.student, g.assignment))
    with (out / "grades.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "score", "max_score", "notes"])
        for g in ordered:
            writer.writerow(
                [g.student, g.assignment, _num(g.score), _num(g.max_score), " | ".join(g.notes)]
            )
    detail = [
        {
            "student": g.student,
            "assignment": g.assignment,
            "score": g.score,
            "max_score": g.max_score,
            "notes": g.notes,
            "tests": [
                {"id": t.id, "points": t.points, "max_points": t.max_points, "message": t.message}
                for t in g.tests
            ],
        }
        for g in ordered
    ]
    (out / "grades.json").write_text(json.dumps(detail, indent=2) + "\n")
    _write_wide(ordered, out / "grades-wide.csv")


def _write_wide(results: list[Graded], path: Path) -> None:
    """One row per student, one column per assignment and a total, for a spreadsheet or an
    LMS gradebook; the row under the header holds each column's maximum."""
    order = list(course.assignments())
    maxima = {g.assignment: g.max_score for g in results}
    ids = [a for a in order if a in maxima] + sorted(set(maxima) - set(order))
    scores: dict[str, dict[str, float]] = {}
    for g in results:
        scores.setdefault(g.student, {})[g.assignment] = g.score
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *ids, "total"])
        writer.writerow(["(maximum)", *(_num(maxima[a]) for a in ids), _num(sum(maxima.values()))])
        for student, got in sorted(scores.items()):
            cells = [_num(got[a]) if a in got else "" for a in ids]
            writer.writerow([student, *cells, _num(sum(got.values()))])


def _num(x: float) -> str:
    return f"{x:g}"


def student_view(graded: Graded) -> nbformat.NotebookNode | None:
    """The executed notebook as the student may see it: hidden tests and tracebacks removed."""
    if graded.notebook is None:
        return None
    nb = copy.deepcopy(graded.notebook)
    clear = ClearHiddenTests()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not is_test(cell):
            continue
        cell, _ = clear.preprocess_cell(cell, {}, index)
        nb.cells[index] = cell
        # A traceback would quote the hidden test's lines: keep only the message.
        for out in cell.outputs:
            if out.output_type == "error":
                out.traceback = [f"{out.ename}: {out.evalue}"]
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                out.traceback = [_GRADING_PATHS.sub("", line) for line in out.traceback]
    return nb


# Where things lie on the grading machine: the course, Python's own libraries and a
# notebook's scratch folder. A student's traceback shows `concurrent_burgers/testing.py`
# and `anyio/_core/...`, not the machine's layout.
_GRADING_PATHS = re.compile(
    "|".join(
        re.escape(str(p).rstrip("/") + "/")
        for p in sorted(
            {course.ROOT, *(Path(sysconfig.get_path(k)) for k in ("stdlib", "purelib", "platlib"))},
            key=lambda p: -len(str(p)),
        )
    )
    + "|"
    + f"(?:{re.escape(tempfile.gettempdir())}|/tmp)"
    + r"/(?:autograder-runs-\w+/)?grade-\w+/"
)


def write_feedback(graded: Graded, out: Path) -> Path:
    """``feedback/<student>/<assignment>.html``: the score table, then the executed notebook.

    JupyterLab's styles (some 300 kB, the same for every page) go once into
    ``feedback/notebook.css``, which each page links to.
    """
    target = out / "feedback" / graded.student / f"{graded.assignment}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    title = html.escape(f"{graded.assignment}: feedback for {graded.student}")
    summary = _summary_html(graded)
    nb = student_view(graded)
    if nb is None:
        body = "<p>No notebook could be run for this submission.</p>"
        head = f"<meta charset='utf-8'><title>{title}</title>"
        page = f"<!DOCTYPE html><html><head>{head}</head><body>{summary}{body}"
        target.write_text(page + "</body></html>")
        return target
    page, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = _TITLE.sub(f"<title>{title}</title>", page, count=1)
    styles = "\n".join(m.group(1) for m in _HEAD_STYLE.finditer(page.split("</head>")[0]))
    stylesheet = out / "feedback" / "notebook.css"
    if not stylesheet.exists() or stylesheet.read_text() != styles:
        stylesheet.write_text(styles)
    head, rest = page.split("</head>", 1)
    head = _HEAD_STYLE.sub("", head) + '<link rel="stylesheet" href="../notebook.css">'
    page = head + "</head>" + _BODY.sub(lambda m: m.group(0) + summary, rest, count=1)
    target.write_text(page)
    return target


def _summary_html(graded: Graded) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(t.id)}</td><td>{_num(t.points)} / {_num(t.max_points)}</td>"
        f"<td><pre style='white-space:pre-wrap;margin:0'>{html.escape(t.message or 'passed')}"
        "</pre></td></tr>"
        for t in graded.tests
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in graded.notes)
    return (
        f"<section style='font-family:sans-serif;margin:1em'>"
        f"<h1>{html.escape(graded.assignment)}: {_num(graded.score)} / "
        f"{_num(graded.max_score)}</h1>"
        f"{f'<ul>{notes}</ul>' if notes else ''}"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>test</th><th>points</th><th>message</th></tr>"
        f"{rows}</table></section>"
    )


def table(graded: Graded, width: int | None = None) -> str:
    """A terminal table of one graded notebook's tests."""
    width = width or shutil.get_terminal_size((100, 20)).columns
    id_w = max([4, *(len(t.id) for t in graded.tests)])
    msg_w = max(30, width - id_w - 14)
    lines = [f"{'test':<{id_w}}  {'points':>7}  message", "-" * min(width, id_w + msg_w + 11)]
    for t in graded.tests:
        pts = f"{_num(t.points)}/{_num(t.max_points)}"
        wrapped = _wrap(t.message or "passed", msg_w)
        lines.append(f"{t.id:<{id_w}}  {pts:>7}  {wrapped[0]}")
        lines.extend(f"{'':<{id_w}}  {'':>7}  {rest}" for rest in wrapped[1:])
    lines.append("-" * min(width, id_w + msg_w + 11))
    lines.append(f"{'total':<{id_w}}  {_num(graded.score) + '/' + _num(graded.max_score):>7}")
    lines.extend(f"note: {n}" for n in graded.notes)
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    for line in text.splitlines() or [""]:
        indent = len(line) - len(line.lstrip())
        out.extend(wrap(line, width, indent=" " * (indent + 2)).splitlines() or [""])
    return out
