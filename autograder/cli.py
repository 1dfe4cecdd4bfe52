"""The grader's command line: ``autograder release | grade | check``.

Also reachable as ``python -m autograder``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import course, hints
from autograder.course import Assignment, UserError

if TYPE_CHECKING:
    from autograder.intake import Intake

# Heavy imports (nbgrader, nbclient, nbconvert) happen inside the commands, so that
# `--help` and input errors answer at once.


def _limits(args: argparse.Namespace):
    from autograder.execute import Limits

    return Limits(
        cell_seconds=args.cell_timeout,
        notebook_seconds=args.time_limit,
        memory_bytes=int(args.memory * 1024**3),
    )


def _notebook(path_text: str) -> Path:
    path = Path(path_text)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of a notebook (.ipynb)")
    if path.suffix != ".ipynb":
        raise UserError(f"{path} is not a notebook (expected a .ipynb file)")
    return path


def _assignment_of(path: Path) -> Assignment:
    """The assignment a notebook belongs to, by file name, else by folder name."""
    known = course.assignments()
    for name in (path.stem, path.parent.name):
        if name in known:
            return known[name]
    raise UserError(
        f"cannot tell which assignment {path.name} belongs to; name it like its assignment "
        f"({', '.join(known)})"
    )


# --------------------------------------------------------------------------- release


def cmd_release(args: argparse.Namespace) -> int:
    from autograder.release import release

    ids = args.assignments or list(course.assignments())
    for assignment_id in ids:
        path = release(course.assignment(assignment_id))
        print(f"released {path.relative_to(course.ROOT)}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from autograder import gradebook

    ids = args.assignments or list(course.assignments())
    for assignment_id in ids:
        gradebook.record_assignment(course.assignment(assignment_id))
    print(f"recorded {len(ids)} assignment(s) in the gradebook {gradebook.db_url()}")
    return 0


# --------------------------------------------------------------------------- grade


def _source_copies(subs: list) -> dict:
    from autograder.grading import SourceCopies

    copies = {}
    for sub in subs:
        if sub.assignment.id not in copies:
            try:
                copies[sub.assignment.id] = SourceCopies.load(sub.assignment)
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"cannot read the notebooks of {sub.assignment.id}: {exc}"
                ) from None
    return copies


def _isolation(*also_hide: Path):
    """The confinement to use, after saying on stdout whether this machine allows it."""
    from autograder.grading import Isolation, isolation_available

    available, how = isolation_available()
    print(f"isolation: {how}", flush=True)
    return Isolation().also_hiding(*also_hide) if available else None


def cmd_grade(args: argparse.Namespace) -> int:
    from autograder import intake

    root = Path(args.submissions)
    if not root.is_dir() and not (root.is_file() and root.suffix.lower() == ".zip"):
        raise UserError(
            f"no such folder: {root} (expected SUBMISSIONS/<student>/<assignment>/, "
            "or an LMS export's folder or .zip)"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    roster = intake.load_roster(Path(args.roster)) if args.roster else None
    with intake.opened(root, roster) as found:
        return _grade(args, root, out, found)


def _grade(args: argparse.Namespace, root: Path, out: Path, found: Intake) -> int:
    from autograder import intake

    subs = found.submissions
    if args.student:
        subs = [s for s in subs if s.student in args.student]
    for line in intake.report_lines(found.not_graded):
        print(line, file=sys.stderr)
    if not subs and args.student:
        found_students = sorted({s.student for s in found.submissions})
        raise UserError(
            f"no submission of {', '.join(args.student)} under {root}; students found there: "
            + (", ".join(found_students[:20]) or "none")
        )
    if not subs:
        raise UserError(f"no submissions found under {root} (expected <student>/<assignment>/)")

    from autograder import gradebook
    from autograder.grading import grade_many
    from autograder.progress import Progress
    from autograder.reports import write_feedback, write_grades

    copies = _source_copies(subs)
    for assignment_id in copies:
        gradebook.record_assignment(course.assignment(assignment_id))
    out.mkdir(parents=True, exist_ok=True)
    intake.write_not_graded(found.not_graded, out)
    isolation = _isolation(root, out, found.scratch)
    by_key = {(s.student, s.assignment.id): s for s in subs}
    with Progress(len(subs), quiet=args.quiet) as progress:
        for graded in grade_many(subs, copies, _limits(args), args.workers, isolation):
            gradebook.record(graded, by_key[graded.student, graded.assignment], force=args.force)
            write_feedback(graded, out)
            graded.notebook = None  # recorded and written; free the memory
            progress.graded(graded)
    write_grades(gradebook.class_results(), out)
    print(
        f"{progress.summary(not_graded=len(found.not_graded))}; wrote {out / 'grades.csv'} "
        "for the whole class" + (f" and {out / 'not-graded.csv'}" if found.not_graded else "")
    )
    return 0


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    path = _notebook(args.notebook)
    assignment = _assignment_of(path)
    if args.hint_reset:
        hints.reset(path)
    from autograder.grading import Isolation, Submission, grade_many, isolation_available
    from autograder.reports import table

    sub = Submission("you", assignment, path)
    copies = _source_copies([sub])
    print(f"Checking {path} against the hidden tests of {assignment.id}: {assignment.title}")
    isolation = Isolation() if isolation_available()[0] else None
    (graded,) = grade_many([sub], copies, _limits(args), 1, isolation)
    print(table(graded))
    failing = [t for t in graded.tests if t.points < t.max_points]
    if not failing:
        print("\nFull marks. Well done!")
        return 0
    first = failing[0]
    ladder = hints.ladder_for(assignment, first.id, first.message)
    if ladder is not None:
        print(f"\nFirst failing test: {first.id}")
        print(hints.show(path, ladder, climb=args.hint))
        print("(Run again with --hint for the next hint on this test; --hint-reset starts over.)")
    return 1


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograder", description="Release, grade and check the Concurrent Burgers course."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("release", help="regenerate notebooks/ from solutions/")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser(
        "record",
        help="put assignments and their graded cells in nbgrader's gradebook "
        "(release and grade do it too), so that formgrader shows their points",
    )
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all)")
    p.set_defaults(run=cmd_record)

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--cell-timeout",
            type=float,
            default=20.0,
            metavar="SECONDS",
            help="longest a single cell may run (default 20)",
        )
        p.add_argument(
            "--time-limit",
            type=float,
            default=180.0,
            metavar="SECONDS",
            help="longest one notebook may take in all (default 180)",
        )
        p.add_argument(
            "--memory",
            type=float,
            default=3.0,
            metavar="GIB",
            help="memory limit for each notebook's grading, in GiB (default 3)",
        )

    p = sub.add_parser(
        "grade",
        help="grade SUBMISSIONS/<student>/<assignment>/*.ipynb, or a Canvas or Moodle export",
    )
    p.add_argument(
        "submissions",
        help="folder of student folders, or an LMS export (folder or .zip); see the README",
    )
    p.add_argument("--out", required=True, help="folder for grades.csv, grades.json, feedback/")
    p.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="notebooks graded at once (default: two per core; kernels mostly wait)",
    )
    p.add_argument(
        "--student",
        action="append",
        metavar="NAME",
        help="grade only this student (repeat for more); everyone else's grades stay",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary at the end")
    p.add_argument(
        "--roster",
        metavar="CSV",
        help="map LMS names to student ids (columns lms_name,student_id); without it an LMS "
        "name, lowercased with '-' for other characters, is the id",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="discard manual grades an instructor gave in formgrader to the regraded students",
    )
    limits(p)
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("check", help="grade one notebook against the hidden tests")
    p.add_argument("notebook", help="path of your notebook")
    p.add_argument(
        "--hint", action="store_true", help="climb one rung of the first failing test's hints"
    )
    p.add_argument(
        "--hint-reset", action="store_true", help="forget the hints shown for this notebook"
    )
    limits(p)
    p.set_defaults(run=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    # jsonschema (through nbformat) imports rfc3987_syntax when it is installed, which
    # builds parsing grammars for 2-4 s, only to check the "iri" format that notebooks
    # never use. Without it, jsonschema simply skips that check.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    args = build_parser().parse_args(argv)
    os.environ.setdefault("JUPYTER_CONFIG_DIR", str(course.AUTOGRADER))
    try:
        return args.run(args)
    except UserError as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autograder: interrupted", file=sys.stderr)
        return 130
