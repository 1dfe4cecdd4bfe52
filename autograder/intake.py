"""Intake: what an instructor received, turned into the submissions to grade, and a report
of everything that was not graded and why.

Nothing is dropped: every folder, file and archive member under SUBMISSIONS either
becomes a graded submission (a row in ``grades.csv``) or is listed in the "not graded"
report (``not-graded.csv``, ``path,reason``). Only ``.ipynb_checkpoints``,
``__pycache__``, ``.DS_Store`` and ``timestamp.txt`` are passed over silently, and data
files beside a notebook in an assignment folder travel with it (grading copies them into
the notebook's working folder).

Layouts, which may be mixed in one SUBMISSIONS folder:

* **The tree** ``<student>/<assignment>/<notebook>.ipynb``. The folder name is the
  student id. This is also what ``nbgrader collect`` gathers in
  ``submitted/<student>/<assignment>/`` (give that ``submitted`` folder as SUBMISSIONS);
  its ``timestamp.txt`` goes to the gradebook as the submission time.
* **A Canvas export** ("Download Submissions": a ``.zip``, or the flat folder it unpacks
  to). Each file is ``<name>_<userid>_<submissionid>_<original file name>``, or
  ``<name>_LATE_<userid>_<submissionid>_<original file name>`` for late work (noted);
  Canvas appends ``-1``, ``-2`` to the original name of a repeated upload
  (``01-waiting-1.ipynb``). A student's other files in the export travel with their
  notebook; a ``.zip`` a student uploaded is listed, not opened.
* **A Moodle export** ("Download all submissions"): a folder per student,
  ``<Full Name>_<participant id>_assignsubmission_file_/``, holding the uploaded files.
* **A .zip** of any of these: SUBMISSIONS itself, or a ``.zip`` directly inside it. It is
  unpacked into a temporary folder that the grade run deletes afterwards (a zip holding
  one folder and nothing else is read from inside that folder). Members with an absolute
  path or a ``..`` are refused and listed; archives inside an archive are not opened.

Student ids for LMS exports: with a roster (``--roster CSV``, columns
``lms_name,student_id``), ``lms_name`` is the name as it appears in the export (Canvas
``smithjane``, Moodle ``Jane Smith``; compared lowercased, punctuation ignored) or the
LMS's number for the student (Canvas user id, Moodle participant id). Without a roster,
or for a name missing from it (noted), the id is the LMS name lowercased, with every run
of other characters than letters and digits turned into ``-`` (``Jane Smith`` ->
``jane-smith``).

The assignment comes from the folder name (the tree) or the notebook's file name.
Near misses are matched and noted in the submission's notes: letter case (``02-Burgers``),
``_`` or spaces for ``-`` (``01_waiting``), a copy suffix (``-Copy1``, `` (1)``, Canvas's
``-1``). In an assignment folder, a notebook whose name names no assignment
(``Untitled.ipynb``, ``Untitled1.ipynb``, ...) is taken for the folder's assignment, and
one named for another assignment counts for that one; a folder of the same assignment
inside it (an archive unpacked twice) is read too. A notebook loose in a student
folder counts for the assignment its name gives. In an LMS export, a notebook whose name
names no assignment is taken for the export's assignment when every other notebook in it
is for one and the same assignment.

Several candidate notebooks for one student and assignment: the one with the exact name
``<assignment>.ipynb`` is graded (in an exactly named assignment folder before a loose
one), else the newest (file modification time); the others are named in the notes and
listed as not graded. An assignment folder without a notebook still gets its row (no
test can score), with a note.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autograder import course
from autograder.course import Assignment, UserError
from autograder.grading import Submission

IGNORED = frozenset({".ipynb_checkpoints", "__pycache__", ".DS_Store", "timestamp.txt"})
CANVAS = re.compile(
    r"^(?P<name>.+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$"
)
MOODLE = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?$")
# Jupyter's "Make a Copy", a browser's second download, Canvas's repeated upload.
_COPY_SUFFIX = re.compile(r"(?:-Copy\d*| \(\d+\)|-\d+)$", re.IGNORECASE)
# The most an archive member may unpack to (a notebook is graded up to 50 MB).
MAX_MEMBER_BYTES = 200 * 1024**2


@dataclass(frozen=True)
class NotGraded:
    """Something under SUBMISSIONS that no grade came from, and why.

    ``path`` is relative to SUBMISSIONS; inside an archive, ``<archive>:<member>``.
    """

    path: str
    reason: str


@dataclass
class Intake:
    """What :func:`read` found: the submissions to grade, and what was not graded."""

    submissions: list[Submission]
    not_graded: list[NotGraded]
    # Where archives were unpacked and LMS files staged: kernels must not see it.
    scratch: Path


# --------------------------------------------------------------------------- names


def match_assignment(
    name: str, known: dict[str, Assignment] | None = None
) -> tuple[Assignment, list[str]] | None:
    """The assignment ``name`` (a folder name or a notebook's stem) stands for, with the
    near misses it took to get there (empty when exact), or None."""
    known = course.assignments() if known is None else known
    if name in known:
        return known[name], []
    misses = []
    stem = name
    while (m := _COPY_SUFFIX.search(stem)) and m.start() > 0 and stem not in known:
        misses.append(f"the suffix {m.group()!r}")
        stem = stem[: m.start()]
    if stem in known:
        return known[stem], misses
    dashed = re.sub(r"[\s_]+", "-", stem.strip())
    if dashed != stem:
        misses.append("'_' for '-'" if "_" in stem else "spaces for '-'")
    if dashed in known:
        return known[dashed], misses
    folded = {k.casefold(): a for k, a in known.items()}
    if dashed.casefold() in folded:
        return folded[dashed.casefold()], [*misses, "letter case"]
    return None


def slug(name: str) -> str:
    """An LMS name as a student id: lowercased, other characters than letters and digits
    turned into ``-``."""
    return re.sub(r"[\W_]+", "-", name.casefold()).strip("-")


def load_roster(path: Path) -> dict[str, str]:
    """The roster CSV (columns ``lms_name,student_id``) as {key: student id}, where a key
    is an LMS name as :func:`slug` spells it, or an LMS number."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read the roster {path}: {exc}") from None
    if not {"lms_name", "student_id"} <= columns:
        raise UserError(f"the roster {path} needs a header line with lms_name,student_id")
    roster: dict[str, str] = {}
    for row in rows:
        key, student = slug(row["lms_name"] or ""), (row["student_id"] or "").strip()
        if not key or not student:
            continue
        if roster.get(key, student) != student:
            raise UserError(
                f"the roster {path} maps {row['lms_name']!r} to both {roster[key]!r} "
                f"and {student!r}"
            )
        roster[key] = student
    return roster


# --------------------------------------------------------------------------- reading


@contextmanager
def opened(root: Path, roster: dict[str, str] | None = None) -> Iterator[Intake]:
    """:func:`read` with a scratch folder for unpacked archives and LMS files, deleted on
    leaving (grade inside the ``with``)."""
    scratch = Path(tempfile.mkdtemp(prefix="autograder-intake-"))
    try:
        yield read(root, scratch, roster)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read(
    root: Path,
    scratch: Path,
    roster: dict[str, str] | None = None,
    known: dict[str, Assignment] | None = None,
) -> Intake:
    """Every submission under ``root`` (a folder or a ``.zip``), and what was not graded.

    Archives are unpacked and LMS files staged (one folder per notebook, with the
    student's other files) under ``scratch``, which must outlive the grading.
    """
    reader = _Reader(scratch, roster, course.assignments() if known is None else known)
    if root.is_dir():
        reader.top(root, "", in_archive=False)
    elif root.suffix.lower() == ".zip":
        reader.archive(root, root.name)
    else:
        raise UserError(f"{root} is neither a folder nor a .zip archive")
    return reader.finish()


def report_lines(not_graded: Iterable[NotGraded]) -> list[str]:
    """The report as ``grade`` prints it: one line each."""
    return [f"not graded: {n.path}: {n.reason}" for n in not_graded]


def write_not_graded(not_graded: Iterable[NotGraded], out: Path) -> Path:
    """``out/not-graded.csv`` (``path,reason``), written even when empty."""
    path = out / "not-graded.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows([n.path, n.reason] for n in not_graded)
    return path


@dataclass
class _Candidate:
    student: str
    assignment: Assignment
    path: Path
    shown: str
    notes: list[str]
    exact: bool  # named <assignment>.ipynb
    placed: bool  # in an exactly named assignment folder, or from an LMS export

    def rank(self) -> tuple:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = 0.0
        # The exact name wins, in its own folder before loose; else the newest.
        return (self.exact, self.exact and self.placed, mtime, self.shown)


@dataclass
class _Empty:
    """An assignment folder without a notebook: a row of its own unless a notebook was
    found elsewhere for the same student and assignment."""

    student: str
    assignment: Assignment
    folder: Path
    shown: str
    notes: list[str]


@dataclass
class _Export:
    """The LMS files of one folder level (one export), resolved together."""

    canvas: dict[str, list[tuple[Path, str, re.Match]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    unmatched: list[tuple[str, Path, str, list[str]]] = field(default_factory=list)
    assignments: set[str] = field(default_factory=set)


class _Reader:
    def __init__(
        self, scratch: Path, roster: dict[str, str] | None, known: dict[str, Assignment]
    ) -> None:
        self.scratch = scratch
        self.roster = roster
        self.known = known
        self.candidates: list[_Candidate] = []
        self.empties: list[_Empty] = []
        self.not_graded: list[NotGraded] = []

    def skip(self, shown: str, reason: str) -> None:
        self.not_graded.append(NotGraded(shown, reason))

    def course_has(self) -> str:
        return f"the course has {', '.join(self.known)}"

    # ----------------------------------------------------------------- top level

    def top(self, folder: Path, prefix: str, in_archive: bool) -> None:
        """A folder of student folders and/or LMS files (SUBMISSIONS, or an archive)."""
        export = _Export()
        for entry in _entries(folder):
            shown = prefix + entry.name
            if entry.is_dir():
                if MOODLE.match(entry.name):
                    self.moodle(entry, shown, export)
                elif match_assignment(entry.name, self.known):
                    self.skip(
                        shown,
                        "a folder named like an assignment, outside any student folder "
                        "(SUBMISSIONS holds <student>/<assignment>/ folders)",
                    )
                else:
                    self.student(entry, shown)
            elif (m := CANVAS.match(entry.name)) and entry.suffix.lower() != ".zip":
                export.canvas[self.lms_key(m["name"], m["user"])].append((entry, shown, m))
            elif m:
                self.skip(
                    shown,
                    "an archive a student uploaded to Canvas; unpack it into "
                    "<student>/<assignment>/ to grade it",
                )
            elif entry.suffix.lower() == ".zip":
                if in_archive:
                    self.skip(shown, "an archive inside an archive is not opened; unpack it")
                else:
                    self.archive(entry, shown)
            elif entry.suffix.lower() == ".ipynb":
                self.skip(
                    shown,
                    "a notebook outside any student folder, not named as in a Canvas export "
                    "(<name>_<userid>_<submissionid>_<file>): put it in <student>/<assignment>/",
                )
            else:
                self.skip(shown, "a file outside any student folder, not from an LMS export")
        self.canvas(export)
        self.resolve_unmatched(export)

    def archive(self, path: Path, shown: str) -> None:
        """Unpack a zip under the scratch folder and read it like SUBMISSIONS."""
        dest = Path(tempfile.mkdtemp(prefix="archive-", dir=self.scratch))
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            self.skip(shown, f"not a readable zip archive ({exc})")
            return
        with zf:
            for info in zf.infolist():
                self.extract(zf, info, dest, f"{shown}:{info.filename}")
        inner, prefix = dest, f"{shown}:"
        entries = _entries(inner)
        while len(entries) == 1 and entries[0].is_dir() and not self.recognised(entries[0]):
            inner = entries[0]
            prefix += inner.name + "/"
            entries = _entries(inner)
        self.top(inner, prefix, in_archive=True)

    def recognised(self, folder: Path) -> bool:
        """Whether ``folder`` reads as a student's (it holds an assignment's folder or
        notebook) or as a Moodle submission."""
        if MOODLE.match(folder.name):
            return True
        return any(
            match_assignment(e.name if e.is_dir() else e.stem, self.known) for e in _entries(folder)
        )

    def extract(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, shown: str) -> None:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            self.skip(shown, "refused: an archive member with an absolute path")
            return
        if ".." in parts:
            self.skip(shown, "refused: an archive member whose path climbs out with '..'")
            return
        if any(p in IGNORED for p in parts):
            return
        target = dest.joinpath(*parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        if info.file_size > MAX_MEMBER_BYTES:
            self.skip(shown, f"too large to unpack ({info.file_size // 1024**2} MB)")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = 0
            with zf.open(info) as src, target.open("wb") as dst:
                while chunk := src.read(1024**2):
                    written += len(chunk)
                    if written > MAX_MEMBER_BYTES:
                        raise ValueError("it unpacks to more than its header says")
                    dst.write(chunk)
        except Exception as exc:  # a damaged, encrypted or oddly compressed member
            target.unlink(missing_ok=True)
            self.skip(shown, f"could not be unpacked ({exc})")
            return
        stamp = time.mktime((*info.date_time, 0, 0, -1))
        _touch(target, stamp)

    # ----------------------------------------------------------------- the tree

    def student(self, folder: Path, shown: str) -> None:
        """``<student>/``: assignment folders and loose notebooks."""
        student = folder.name
        before = len(self.candidates) + len(self.empties)
        for entry in _entries(folder):
            entry_shown = f"{shown}/{entry.name}"
            if entry.is_dir():
                match = match_assignment(entry.name, self.known)
                if match is None:
                    held = ", ".join(e.name for e in _entries(entry)) or "nothing"
                    self.skip(
                        entry_shown,
                        f"no assignment called {entry.name!r} ({self.course_has()}); "
                        f"it holds {held}",
                    )
                else:
                    self.assignment_folder(student, entry, entry_shown, *match)
            elif entry.suffix.lower() == ".ipynb":
                match = match_assignment(entry.stem, self.known)
                if match is None:
                    self.skip(
                        entry_shown,
                        "a notebook loose in the student folder whose name names no "
                        f"assignment ({self.course_has()})",
                    )
                    continue
                assignment, misses = match
                notes = [
                    f"{entry_shown} lay loose in the student folder; taken for "
                    f"{assignment.id} by its name" + _near(misses)
                ]
                self.add(student, assignment, entry, entry_shown, notes, placed=False)
            else:
                self.skip(entry_shown, "not a notebook, and not inside an assignment folder")
        if len(self.candidates) + len(self.empties) == before:
            self.skip(shown, "no assignment folder or notebook found for this student")

    def assignment_folder(
        self,
        student: str,
        folder: Path,
        shown: str,
        assignment: Assignment,
        misses: list[str],
        nested: bool = False,
    ) -> bool:
        """``<student>/<assignment>/``: its notebooks are candidates; other files travel.

        A folder of the same assignment inside it (an archive unpacked twice) is read
        too, one level deep. Returns whether a notebook was found.
        """
        folder_notes = [f"the folder {shown} was taken for {assignment.id}" + _near(misses)]
        folder_notes = folder_notes if misses else []
        found = False
        for entry in _entries(folder):
            entry_shown = f"{shown}/{entry.name}"
            inner = match_assignment(entry.name, self.known) if entry.is_dir() else None
            if not nested and inner is not None and inner[0].id == assignment.id:
                inner_misses = [*inner[1], f"inside {shown}"]
                found |= self.assignment_folder(
                    student, entry, entry_shown, assignment, inner_misses, nested=True
                )
                continue
            if entry.is_dir():
                self.skip(
                    entry_shown,
                    "a folder inside an assignment folder (only the files beside the "
                    "notebook travel with it)",
                )
                continue
            if entry.suffix.lower() != ".ipynb":
                continue  # a data file: it travels with the notebook
            found = True
            match = match_assignment(entry.stem, self.known)
            if match is not None and match[0].id != assignment.id:
                other, other_misses = match
                notes = [
                    f"{entry_shown} lay in the folder for {assignment.id}; taken for "
                    f"{other.id} by its name" + _near(other_misses)
                ]
                self.add(student, other, entry, entry_shown, notes, placed=False)
                continue
            notes = list(folder_notes)
            if match is None:
                notes.append(
                    f"{entry_shown}: its name names no assignment; taken for "
                    f"{assignment.id}, the assignment of its folder"
                )
            elif match[1]:
                notes.append(f"{entry_shown} was taken for {assignment.id}" + _near(match[1]))
            self.add(student, assignment, entry, entry_shown, notes, placed=not misses)
        if not found and not nested:
            notes = [*folder_notes, f"{shown} holds no notebook"]
            self.empties.append(_Empty(student, assignment, folder, shown, notes))
        elif not found:
            self.skip(shown, "a folder inside an assignment folder, without a notebook")
        return found

    def add(
        self,
        student: str,
        assignment: Assignment,
        path: Path,
        shown: str,
        notes: list[str],
        placed: bool,
    ) -> None:
        exact = path.name == f"{assignment.id}.ipynb"
        self.candidates.append(_Candidate(student, assignment, path, shown, notes, exact, placed))

    # ----------------------------------------------------------------- LMS exports

    def lms_key(self, name: str, number: str) -> str:
        """The student id for an LMS name and number; a roster miss is noted later."""
        if self.roster is not None:
            for key in (number, slug(name)):
                if key in self.roster:
                    return self.roster[key]
        return slug(name) or number

    def roster_notes(self, name: str, number: str, student: str, shown: str) -> list[str]:
        if self.roster is None or number in self.roster or slug(name) in self.roster:
            return []
        return [f"{name!r} ({number}) is not in the roster; graded as {student!r}"]

    def canvas(self, export: _Export) -> None:
        """Canvas files, per student: each notebook staged in a folder of its own, with
        the student's other files beside it."""
        for student, files in sorted(export.canvas.items()):
            notebooks = [f for f in files if f[0].suffix.lower() == ".ipynb"]
            others = [f for f in files if f[0].suffix.lower() != ".ipynb"]
            if not notebooks:
                for _, shown, _ in others:
                    self.skip(shown, f"from a Canvas export, and {student} sent no notebook in it")
                continue
            for path, shown, m in notebooks:
                stage = Path(tempfile.mkdtemp(prefix="staged-", dir=self.scratch))
                for other, _, om in others:
                    shutil.copy2(other, stage / om["file"])
                staged = stage / m["file"]
                shutil.copy2(path, staged)
                notes = self.roster_notes(m["name"], m["user"], student, shown)
                if m["late"]:
                    notes.append("Canvas marked this submission late")
                self.lms_notebook(export, student, staged, shown, notes)

    def moodle(self, folder: Path, shown: str, export: _Export) -> None:
        """``<Full Name>_<participant id>_assignsubmission_file_/``: the student's files."""
        m = MOODLE.match(folder.name)
        assert m is not None
        student = self.lms_key(m["name"], m["participant"])
        entries = _entries(folder)
        notebooks = [e for e in entries if e.is_file() and e.suffix.lower() == ".ipynb"]
        for entry in entries:
            if entry.is_dir():
                self.skip(
                    f"{shown}/{entry.name}",
                    "a folder inside a Moodle submission (only the files beside the "
                    "notebook travel with it)",
                )
        if not notebooks:
            held = ", ".join(e.name for e in entries) or "nothing"
            self.skip(shown, f"a Moodle submission without a notebook; it holds {held}")
            return
        for entry in notebooks:
            entry_shown = f"{shown}/{entry.name}"
            notes = self.roster_notes(m["name"], m["participant"], student, entry_shown)
            self.lms_notebook(export, student, entry, entry_shown, notes)

    def lms_notebook(
        self, export: _Export, student: str, path: Path, shown: str, notes: list[str]
    ) -> None:
        """A notebook from an LMS export: its name gives the assignment."""
        match = match_assignment(path.stem, self.known)
        if match is None:
            export.unmatched.append((student, path, shown, notes))
            return
        assignment, misses = match
        if misses:
            notes = [*notes, f"{shown} was taken for {assignment.id}" + _near(misses)]
        export.assignments.add(assignment.id)
        self.add(student, assignment, path, shown, notes, placed=True)

    def resolve_unmatched(self, export: _Export) -> None:
        """LMS notebooks named for no assignment: the export's, when it has just one."""
        for student, path, shown, notes in export.unmatched:
            if len(export.assignments) == 1:
                (only,) = export.assignments
                notes = [
                    *notes,
                    f"{shown}: its name names no assignment; taken for {only}, the "
                    "assignment of every other notebook in this export",
                ]
                self.add(student, self.known[only], path, shown, notes, placed=True)
            else:
                self.skip(
                    shown,
                    f"cannot tell its assignment from its name ({self.course_has()}); "
                    "rename it after its assignment",
                )

    # ----------------------------------------------------------------- the result

    def finish(self) -> Intake:
        """One submission per student and assignment: the rule's pick among candidates."""
        order = {a: i for i, a in enumerate(self.known)}
        groups: dict[tuple[str, str], list[_Candidate]] = defaultdict(list)
        for c in self.candidates:
            groups[c.student, c.assignment.id].append(c)
        subs: dict[tuple[str, str], Submission] = {}
        for key, group in groups.items():
            group.sort(key=_Candidate.rank, reverse=True)
            chosen, others = group[0], group[1:]
            notes = list(chosen.notes)
            if others:
                exact = f"{chosen.assignment.id}.ipynb"
                why = (
                    "it has the exact name"
                    if chosen.exact
                    else f"the newest; none is named {exact}"
                )
                notes.append(
                    f"{len(group)} notebooks for {chosen.assignment.id}: graded "
                    f"{chosen.shown} ({why}); not graded: " + ", ".join(o.shown for o in others)
                )
                for o in others:
                    self.skip(
                        o.shown,
                        f"{chosen.student} has another notebook for {chosen.assignment.id}: "
                        f"{chosen.shown} was graded ({why})",
                    )
            subs[key] = Submission(chosen.student, chosen.assignment, chosen.path, tuple(notes))
        for empty in self.empties:
            key = (empty.student, empty.assignment.id)
            if key in subs:
                self.skip(
                    empty.shown,
                    f"holds no notebook; {empty.student}'s {empty.assignment.id} was graded "
                    f"from {groups[key][0].shown if key in groups else 'another empty folder'}",
                )
                continue
            path = empty.folder / f"{empty.assignment.id}.ipynb"
            subs[key] = Submission(empty.student, empty.assignment, path, tuple(empty.notes))
        ordered = sorted(subs.values(), key=lambda s: (s.student, order[s.assignment.id]))
        return Intake(ordered, sorted(self.not_graded, key=lambda n: n.path), self.scratch)


def _entries(folder: Path) -> list[Path]:
    """A folder's entries, sorted, without the ones passed over silently."""
    return sorted(e for e in folder.iterdir() if e.name not in IGNORED)


def _near(misses: list[str]) -> str:
    return f" (a near miss: {', '.join(misses)})" if misses else ""


def _touch(path: Path, stamp: float) -> None:
    try:
        os.utime(path, (stamp, stamp))
    except (OSError, OverflowError, ValueError):
        pass
