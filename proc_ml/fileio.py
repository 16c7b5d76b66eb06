"""Atomic file writes and output-path safety, shared by every writer in proc-ml.

* ``atomic_path`` / ``write_bytes``: a temp file beside the target, renamed over it, so a
  reader never sees half a file and a crash leaves the old file intact. Temp files are
  created with ``O_EXCL`` (a planted file or symlink at that name is never followed) and
  named ``.<name>.<12 hex digits>.tmp``; ``remove_stale_temps`` deletes the ones a killed
  run left (only that exact pattern, never a symlink).
* ``FolderLock``: an exclusive ``flock`` on a lock file opened with ``O_NOFOLLOW``, so one
  writer per output folder and no planted symlink can make the lock create a file
  elsewhere.
* ``check_output_folder``: an output folder that is a file, cannot be created or is not
  writable is one line before any work starts.
* ``check_replaceable`` / ``check_not_input``: an output that would replace an input, or a
  file an earlier run of the same command did not write, is one line before any work starts.
* ``die_with_parent``: worker processes end when the process that started them is killed.
* ``file_sha256``: a file's content hash (what a batch manifest or a fine-tuned run records
  of the model it used).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import OutputError, ProcMLError

#: Temp files of ``atomic_path``: ".<name>.<token_hex(6)>.tmp" (group 1: the target's name).
TEMP_FILE = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.tmp$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

# A fixed timestamp keeps zip-based files (.npz) byte-identical between runs.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Readers never see a half-written file and a crash leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp_file(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _new_temp_file(path: Path) -> Path:
    """Create an empty, uniquely named temp file beside ``path``.

    Created with mode 0o666 less the umask, like any new file (``tempfile.mkstemp`` would
    make it 0o600, and the rename would leave dataset files unreadable to other users).
    """
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays like ``np.savez_compressed`` but with fixed zip timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    write_bytes(path, npz_bytes(arrays))


def safe_join(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Join ``relative`` under ``root`` and refuse any result outside ``root``.

    Asset names come from users' folders; '..', absolute paths or symlinked parents must
    never place an output elsewhere.
    """
    root_resolved = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise ProcMLError(f"{relative}: output path must be relative to {root}")
    target = (root_resolved / rel).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise ProcMLError(f"{relative}: output path would leave the output folder {root}")
    return target


# -- errors of the file system as one line --------------------------------------------------
def os_error_text(exc: OSError) -> str:
    """``cannot write '/out/x.csv': No space left on device`` (no errno numbers, no traceback)."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ELOOP:
        reason = "it is a symbolic link (refused: it could point outside the folder)"
    name = exc.filename if exc.filename is not None else None
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if name is not None:
        temp = TEMP_FILE.match(Path(name).name)
        if temp:                          # an atomic write's temp file: name what it was for
            name = str(Path(name).with_name(temp.group(1)))
        name = display_name(str(name))
        return f"cannot use '{name}': {reason}"
    return reason


def display_name(text: str) -> str:
    """A path as printable UTF-8: bytes that are not UTF-8 (file names from other systems)
    are shown as ``\\xNN`` escapes instead of ending the program with UnicodeEncodeError."""
    return os.fsencode(text).decode("utf-8", "backslashreplace") if _has_surrogates(text) else text


def one_line_name(text: str) -> str:
    """A name on one line: ``display_name``, with control characters (a newline or tab in a
    file name) written as escapes (``\\n``)."""
    text = display_name(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


# -- output folders -------------------------------------------------------------------------
def check_output_folder(path: str | os.PathLike, what: str = "--out", create: bool = True) -> Path:
    """Create ``path`` (and parents) if needed and prove it is a writable folder; one
    ``OutputError`` line when it is a file, read-only, or cannot be created. ``create=False``
    creates nothing (for a command that may end without output): a folder that does not
    exist yet is checked through its nearest existing parent's permissions."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {display_name(str(path))}: exists and is not a folder")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputError(f"{what} {display_name(str(path))}: "
                                  f"{display_name(str(parent))} is a file, not a folder")
            break
    if not create:
        existing = next((p for p in (path, *path.parents) if p.is_dir()), Path("."))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {display_name(str(path))}: cannot write there "
                              f"(Permission denied)")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = _new_temp_file(path / ".write-probe")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{what} {display_name(str(path))}: cannot write there ({reason})") from None
    return path


def check_output_file(path: str | os.PathLike, what: str = "--out", create: bool = True) -> Path:
    """An output file's path: not a folder, its folder writable (``check_output_folder``;
    ``create=False``: a missing folder is not created, for an output written at the end of a
    command that may fail before it)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {display_name(str(path))}: is a folder, expected a file name")
    check_output_folder(path.parent, f"{what} {display_name(str(path))}: folder", create=create)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_input(outputs, inputs, what: str = "--out") -> None:
    """One ``OutputError`` line when an output path is one of the inputs (the same file,
    through any path or link): writing it would replace the input."""
    for out in outputs:
        for given in inputs:
            if given is not None and _same_file(Path(out), Path(given)):
                raise OutputError(f"{what} {display_name(str(out))}: is the input "
                                  f"{display_name(str(given))}; writing it would replace the "
                                  f"input: choose another {what}")


def check_replaceable(folder: str | os.PathLike, names, inputs=(), what: str = "--out",
                      record: str = "summary.json") -> None:
    """Before a command writes the fixed file ``names`` into ``folder``: refuse (one
    ``OutputError`` line) when one would replace an input, or an existing file that no earlier
    run of the command wrote there. An earlier run is recognised by its ``record`` (a JSON
    summary whose ``files`` lists what it wrote), so re-running into the same folder replaces
    its own outputs and nothing else (a dataset's ``faces.csv``, a user's ``parts.ply``)."""
    folder = Path(folder)
    check_not_input([folder / n for n in names], inputs, what)
    present = [n for n in names if (folder / n).exists() or (folder / n).is_symlink()]
    if not present:
        return
    ours: set[str] = set()
    try:
        earlier = json.loads((folder / record).read_text(encoding="utf-8"))
        if isinstance(earlier, dict) and isinstance(earlier.get("files"), list):
            ours = {str(f) for f in earlier["files"]}
    except (OSError, ValueError):
        pass
    foreign = [n for n in present if n not in ours]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(f"{what} {display_name(str(folder))}: already holds {shown}, not written "
                          f"by an earlier run of this command (no {record} lists "
                          f"{'it' if len(foreign) == 1 else 'them'}); choose another {what} or "
                          f"remove {'it' if len(foreign) == 1 else 'them'}")


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete ``atomic_path`` temp files a killed run left in ``folder`` (only that name
    pattern, never through a symlink); the number removed."""
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for dirpath, _dirnames, filenames in walker:
        for name in filenames:
            path = Path(dirpath) / name
            if TEMP_FILE.match(name) and not path.is_symlink():
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def remove_stale_temps_of(path: str | os.PathLike) -> int:
    """Delete the temp files a killed writer of ``path`` left beside it (only its own:
    ``.<name>.<12 hex digits>.tmp``)."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"[0-9a-f]{12}\.tmp")
    removed = 0
    try:
        names = os.listdir(path.parent if str(path.parent) else ".")
    except OSError:
        return 0
    for name in names:
        candidate = path.parent / name
        if pattern.fullmatch(name) and not candidate.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed += 1
    return removed


class FolderLock:
    """An exclusive ``flock`` on ``folder/name``: one writer per folder, released by the OS
    even when the process is killed. The lock file is opened with ``O_NOFOLLOW`` (a planted
    symlink is refused, never followed). ``remove=True`` deletes the lock file on release
    (for folders whose contents must not change); the inode is re-checked after locking,
    so a file removed by the previous holder is never shared."""

    def __init__(self, folder: str | os.PathLike, name: str, what: str, remove: bool = False):
        self.path, self.what, self.remove, self.fd = Path(folder) / name, what, remove, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:          # Windows: no advisory locks; one writer per folder
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
            except OSError as exc:
                raise OutputError(f"lock file {display_name(str(self.path))}: "
                                  f"{os_error_text(exc).split(': ', 1)[-1]}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(f"{display_name(str(self.path.parent))}: another proc-ml "
                                  f"{self.what} is writing to this folder") from None
            try:
                same = os.fstat(fd).st_ino == os.lstat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)             # removed by the previous holder meanwhile: lock anew

    def __exit__(self, *exc):
        if self.fd is not None:
            if self.remove:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(self.fd)
            self.fd = None
        return False


def open_append(path: str | os.PathLike):
    """``open(path, "ab")`` that refuses a symlink at ``path`` instead of following it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
    return os.fdopen(fd, "ab", buffering=0)


# -- worker processes -----------------------------------------------------------------------
def die_with_parent(parent_pid: int | None = None) -> None:
    """Make the calling process get SIGKILL when its parent dies (Linux ``prctl``; a no-op
    elsewhere, where pools notice the broken pipe instead). Used as the initializer of
    worker processes, so a killed ``generate`` or ``batch`` leaves no worker writing on.
    ``parent_pid``: the parent's pid as the parent saw it, to catch a parent that died
    before ``prctl`` took effect."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)              # the parent died before prctl took effect
    except (OSError, AttributeError):
        pass


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
