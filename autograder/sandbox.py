"""Confine a grading kernel with Linux namespaces, where the machine allows it.

Called in a freshly forked process just before it starts a kernel:

* a private mount namespace in which the course folder is read-only, and the
  instructor's sources (``solutions/``), the gradebook, the submissions and the
  grading output are covered by empty, unreadable folders;
* the folder of every other notebook being graded is covered too: only this
  notebook's own working folder stays visible;
* a new user namespace (the kernel keeps its user id but loses every privilege
  outside, so it cannot undo those mounts) and a new PID namespace with its own
  ``/proc`` (it cannot see or signal the grader or other students' kernels; when it
  dies, everything it started dies with it).

What it does not do: limit the network, or stop writes outside the course folder and
the covered folders. A grading machine should still run the grader as an unprivileged
user, in a disposable container or VM.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


class SandboxUnavailable(OSError):
    """This machine does not let the grader create the namespaces."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxUnavailable(errno, f"{what}: {os.strerror(errno)}")


def confine(workdir: Path, read_only: list[Path], hidden: list[Path]) -> None:
    """Confine this process and the kernels it starts afterwards (see the module doc).

    Returns in a new process (process 1 of the new PID namespace); the original one
    waits for it and exits with its status.
    """
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWNS), "new mount namespace")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private mounts")
    for path in read_only:
        p = bytes(path)
        _check(libc.mount(p, p, None, MS_BIND | MS_REC, None), f"bind {path}")
        _check(libc.mount(None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None), f"ro {path}")
    # Keep a handle on our own folder, cover its parent (other students' folders), then
    # put our folder back at the same place from the handle.
    own = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in hidden:
            if path.is_dir():
                _cover(libc, path, MS_RDONLY)
        _cover(libc, workdir.parent)
        os.mkdir(workdir, 0o700)
        source = f"/proc/self/fd/{own}".encode()
        _check(libc.mount(source, bytes(workdir), None, MS_BIND, None), "own folder")
    finally:
        os.close(own)
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "new user namespace")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    # This process may not start threads any more (its children live in another PID
    # namespace); its first child is that namespace's process 1 and carries on. When
    # process 1 ends, the kernel and everything it started end with it.
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    # A /proc of the new PID namespace: the grader's and other kernels' processes vanish.
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(libc.mount(b"proc", b"/proc", b"proc", flags, None), "private /proc")


def _cover(libc: ctypes.CDLL, path: Path, flags: int = 0) -> None:
    """Mount an empty, tiny file system over ``path``: what was there cannot be seen."""
    flags |= MS_NOSUID | MS_NODEV
    _check(libc.mount(b"tmpfs", bytes(path), b"tmpfs", flags, b"size=64k,mode=0711"), str(path))
