"""Confine a grading kernel with bubblewrap: an allow-list file system and no network.

A confined kernel is started as ``bwrap [allow-list] -- python -m ipykernel_launcher ...``
(:meth:`Jail.command`). Inside, it sees a fresh root that holds only:

* the system's programs and libraries (``/usr``, and ``/bin``, ``/lib``, ``/lib64``,
  ``/sbin``) and a handful of ``/etc`` files (:data:`ETC_FILES`), all read-only; not
  ``/etc/shadow``, ``/etc/passwd`` or anything else in ``/etc``;
* the Python installation the kernel runs on (the venv, ``sys.prefix``, and the one it
  was made from, ``sys.base_prefix``: just that folder, even when it lives in a home
  folder such as ``/root/.pyenv/versions/3.11.7``), read-only;
* the course package and the assignment's own folder (:attr:`Jail.visible`), read-only;
* its own working folder, writable, at the same path as outside; a private ``/tmp``, a
  minimal ``/dev`` and its own ``/proc``.

Everything else is absent: ``solutions/``, the gradebook, submissions, the output
folder, ``.git``, home folders, other clones of the course, ``/srv``, ``/mnt``, other
kernels' folders. The kernel runs in new user, mount, PID, IPC, UTS, cgroup and network
namespaces with every capability dropped and no way to make further user namespaces: it
cannot see or signal the grader, and its network is a loopback of its own. Its
environment is cut down to :data:`KEPT_ENV`, so the instructor's tokens and paths do
not leak into it. ``--die-with-parent`` and the PID namespace end everything the kernel
started when the kernel (or the grader) dies.

Talking to a kernel in another network namespace: the notebook client stays outside,
in the grader's process, and the kernel uses jupyter_client's ``ipc`` transport (ZMQ
over Unix sockets, which are files and cross network namespaces) with its connection
file and sockets in ``<workdir>/.runtime``, which both sides see at the same path. The
other way, running the whole grading child (notebook client and kernel) inside
bubblewrap, needs a fresh Python inside for every run that imports the notebook client
again, and a way back for the results. Measured on the 2-core course machine
(``benchmarks/sandbox_cost.py``, 10 rounds, medians, neighbours busy): bubblewrap
around the kernel adds +0.02 s to a kernel start (1.16 s plain, 1.18 s confined), lost
in the noise of a whole grading of 00-welcome (5.2-5.8 s either way); a Python inside
bubblewrap takes 0.06 s bare and 2.6 s once it has imported nbclient, nbformat and
jupyter_client, which the other way would have paid on every run.

Why bubblewrap rather than our own ``ctypes`` mount calls (which this module used to
hold): it is the tool Flatpak and many build systems use for exactly this, it is
reviewed and packaged by every distribution, and it builds an allow-list root (a
fresh ``tmpfs`` root, binds, ``pivot_root``, namespaces, dropped capabilities) that would
take far more hand-written mount code to get right. The old code covered a deny-list of
folders and left the rest of the machine, and the network, open. Where ``bwrap`` is
missing or the kernel forbids user namespaces, :func:`available` says so and grading
runs unconfined.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"
# The /etc files a Python kernel reads: the dynamic linker's cache, name-service
# switch and hosts (so "localhost" resolves; no resolv.conf, so nothing else does),
# time zone, locale aliases and fonts (for charts). Not passwd, group or shadow.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "host.conf",
    "hosts",
    "localtime",
    "timezone",
    "locale.alias",
    "mime.types",
    "fonts",
)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Environment variables the kernel keeps (the rest, tokens included, are dropped).
KEPT_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "IPYTHONDIR",
    "JUPYTER_RUNTIME_DIR",
    "MPLBACKEND",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONHASHSEED",
    "PYTHONIOENCODING",
    "PYTHONPATH",
    "PYTHONUTF8",
)
KEPT_PREFIXES = ("LC_",)
TMP_BYTES = 512 * 1024**2  # the private /tmp lives in memory: cap it


def python_installations() -> tuple[Path, ...]:
    """The folders the grader's (and so the kernel's) Python needs: venv and base."""
    found: list[Path] = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        path = Path(prefix).resolve()
        if path not in found:
            found.append(path)
    return tuple(found)


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


@dataclass(frozen=True)
class Jail:
    """How to start one kernel confined to ``workdir`` and the read-only ``visible`` paths.

    ``hidden`` paths are covered by an empty folder where they would otherwise show
    through a visible one (a venv that holds a copy of ``solutions/``, say).
    """

    workdir: Path
    visible: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped in bubblewrap (see the module doc)."""
        args = [
            BWRAP,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "grading",
            # jupyter_client adds this after the environment was cut down; inside the PID
            # namespace the kernel's parent is process 1, which ipykernel takes for "the
            # parent has gone" and quits. --die-with-parent does that job instead.
            "--unsetenv",
            "JPY_PARENT_PID",
        ]
        bound: list[Path] = []
        for name in SYSTEM:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                args += ["--ro-bind", name, name]
                bound.append(path)
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        for path in sorted({p.resolve() for p in (*python_installations(), *self.visible)}):
            if path.exists() and not _inside(path, bound):
                args += ["--ro-bind", str(path), str(path)]
                bound.append(path)
        for path in sorted({p.resolve() for p in self.hidden}):
            if path.is_dir() and _inside(path, bound):
                args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        own = str(self.workdir.resolve())
        args += ["--bind", own, own, "--chdir", own, "--", *argv]
        return args

    @staticmethod
    def environment(env: dict[str, str]) -> dict[str, str]:
        """The part of ``env`` the confined kernel gets (:data:`KEPT_ENV`)."""
        return {k: v for k, v in env.items() if k in KEPT_ENV or k.startswith(KEPT_PREFIXES)}


# What a confined kernel must manage: the kernel's own imports, and nothing else around.
_PROBE = """
import os, ipykernel.kernelapp
assert not os.path.exists("/etc/shadow") and not os.path.exists("/srv")
"""


def available(timeout: float = 60.0) -> tuple[bool, str]:
    """Whether kernels can be confined here, and a line that says how (or why not).

    Starts the kernel's Python once in a :class:`Jail` of a throwaway folder.
    """
    if shutil.which(BWRAP) is None:
        return False, (
            "WARNING: NOT CONFINED. bubblewrap (bwrap) is not installed, so kernels run "
            "as this user: they can read solutions/ and the rest of this machine and use "
            "the network. Install it on a grading machine (apt-get install bubblewrap)."
        )
    with tempfile.TemporaryDirectory(prefix="autograder-probe-") as runs:
        workdir = Path(runs) / "work"
        workdir.mkdir()
        jail = Jail(workdir)
        try:
            done = subprocess.run(
                jail.command([sys.executable, "-c", _PROBE]),
                env=jail.environment(dict(os.environ)),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            problem = done.stderr.strip().splitlines()[-1:] if done.returncode else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = [str(exc)]
    if problem is not None:
        why = problem[0] if problem else "no message"
        return False, (
            f"WARNING: NOT CONFINED. bubblewrap could not confine a kernel here ({why}); "
            "Linux user namespaces may be disabled. Kernels run as this user: they can "
            "read solutions/ and the rest of this machine and use the network."
        )
    return True, (
        "bubblewrap: each kernel sees only the system libraries, Python, the course "
        "package and its assignment (read-only) and its own folder; no network, its own "
        "/proc; solutions/, the gradebook, submissions, output and home folders are absent"
    )
