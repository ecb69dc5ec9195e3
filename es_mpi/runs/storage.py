"""Rank 0's writes to the run directory, made so that a storage fault is an error message, never a crash.

A full disk, a quota, a read-only or vanished directory must not kill the run with a traceback or, worse,
a segmentation fault inside h5py (HDF5 cannot recover from a failed write in the middle of a file). So:
whole files (checkpoint, job.yaml, the first metrics.h5) are built in memory and written with plain
os.write, where the OS error is an ordinary OSError; the metrics file that grows row by row writes only
into disk space reserved for it beforehand; and before each generation's writes the directory is checked
(still there, still writable, room for the next checkpoint). Every failure is a StorageError whose message
names the file and the OS error; the engine then stops all ranks with EXIT_STORAGE.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

# Exit status of a run stopped by a storage fault: nothing is lost beyond the last checkpoint, and it
# does not fix itself, so the Slurm scripts do not requeue it.
EXIT_STORAGE = 4
# Slack on top of a file's own size: file system blocks, directory entries.
SLACK = 64 * 1024
# Warn while the free space holds fewer checkpoints than this.
WARN_CHECKPOINTS = 3


class StorageError(RuntimeError):
    """A write to the run directory failed or would not fit; the message names the file and the error,
    `fix` says what the user does about it before resuming."""

    def __init__(self, message: str, fix: str = "free space") -> None:
        super().__init__(message)
        self.fix = fix


def fix_for(exc: OSError) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make the run directory writable"
    if exc.errno == errno.ENOENT:
        return "restore the run directory"
    return "free space (or raise the quota)" if exc.errno == errno.EDQUOT else "free space"


def describe(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the OS error as a person and a search engine know it."""
    code = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{text} ({code})" if code else text


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def temporary_name(name: str) -> str:
    return "." + name + ".tmp"


class RunDirectory:
    """The run directory, held open: files are made, replaced and removed relative to the open directory,
    so that a directory renamed while a file is written still gets the whole file and its temporary removed,
    and `check_place` can tell that the path no longer leads to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot make or open the run directory: {describe(exc)}",
                               fix_for(exc)) from None
        st = os.fstat(self.fd)
        self.identity = (st.st_dev, st.st_ino)

    def close(self) -> None:
        os.close(self.fd)

    def free_bytes(self) -> int:
        """Space an unprivileged user may still write on the directory's file system (quotas not seen)."""
        st = os.statvfs(self.fd)
        return st.f_bavail * st.f_frsize

    def check_place(self) -> None:
        """Raise StorageError when the path no longer leads to this directory, or its file system went
        read-only: both are found before anything is written, rather than by a failed write."""
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != self.identity
        except OSError:
            moved = True
        if moved:
            where = self._whereabouts()
            raise StorageError(f"{self.path}: the run directory was {where} while training",
                               "move it back" if where.startswith("renamed") else "restore the run directory")
        # The path too: a read-only mount stacked on the directory leaves the open one writable.
        if any(os.statvfs(at).f_flag & os.ST_RDONLY for at in (self.fd, self.path)):
            raise StorageError(f"{self.path}: the run directory's file system is mounted read-only (EROFS)",
                               "make the run directory writable")

    def _whereabouts(self) -> str:
        """'removed' or 'renamed to NEW' (from /proc on Linux; 'removed or renamed' elsewhere)."""
        try:
            target = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return "removed or renamed"
        return "removed" if target.endswith(" (deleted)") else f"renamed to {target}"

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def remove_temporaries(self, names: tuple[str, ...]) -> list[str]:
        """Remove the temporary files of `names` a killed run left behind (they hold space a resume needs)."""
        removed = []
        for name in map(temporary_name, names):
            try:
                os.unlink(name, dir_fd=self.fd)
                removed.append(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"{self.path / name}: cannot remove a stale temporary file: "
                                   f"{describe(exc)}", fix_for(exc)) from None
        return removed

    def write(self, name: str, data: bytes, keep_previous: str | None = None, before_rename=None) -> None:
        """Replace file `name` by `data` atomically: a temporary file written with os.write and fsynced, then
        renamed; with `keep_previous`, the file it replaces stays under that name (a hard link, so the file
        `name` never goes missing). On any OSError the temporary file is removed and StorageError raised."""
        tmp = temporary_name(name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # a network file system may report a full disk or quota only here
            finally:
                os.close(fd)
            if before_rename:
                before_rename()
            if keep_previous and self.exists(name):
                link = temporary_name(keep_previous)
                self._unlink(link)
                os.link(name, link, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                os.replace(link, keep_previous, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            os.fsync(self.fd)
        except OSError as exc:
            self._unlink(tmp)
            if keep_previous:
                self._unlink(temporary_name(keep_previous))
            if exc.errno == errno.ENOENT:
                self.check_place()  # the directory itself went: say so rather than name a file in it
            raise StorageError(f"{self.path / name}: {describe(exc)}", fix_for(exc)) from None

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass  # gone already, or the directory is read-only: nothing more to do about it


def _fallocate():
    """libc's fallocate(2) (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return call


_FALLOCATE = _fallocate()
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE: allocate blocks past the end without changing the file's size


def reserve(fd: int, nbytes: int) -> bool:
    """Allocate `nbytes` of disk past the end of open file `fd`, keeping its size, so that the next writes
    that extend it cannot fail for space or quota. False where the file system cannot do it (the free-space
    check is then all there is); OSError (ENOSPC, EDQUOT, ...) when there is no room for it."""
    if _FALLOCATE is None:
        return False
    if _FALLOCATE(fd, _KEEP_SIZE, os.fstat(fd).st_size, nbytes) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code))
