"""Writing result files atomically: a temporary file in the same folder, flushed to disk,
then renamed over the target, so a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from typing import Sequence, Union

__all__ = ["atomic_write", "check_output"]


def _mode_for(target: str) -> int:
    """The permissions a plain ``open(target, "w")`` would give: the existing file's, else
    0o666 less the umask (mkstemp's own 0o600 would surprise users)."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: Union[str, os.PathLike], data: Union[str, bytes]) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically.

    If anything fails before the final rename, ``path`` keeps its previous contents and the
    temporary file is removed.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=".congruence-", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, _mode_for(target))
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_output(path: Union[str, os.PathLike], suffixes: Sequence[str], what: str) -> str:
    """Check, before any work, that ``path`` can be written as ``what``: its suffix is one of
    ``suffixes`` (case-insensitive), it is not a folder, and its folder exists and is
    writable. Returns the suffix (lower case).

    Raises
    ------
    ValueError
        For an unknown suffix (the formats listed) or a path that is a folder.
    FileNotFoundError, PermissionError
        When the folder does not exist, or cannot be written.
    """
    target = os.fspath(path)
    suffix = os.path.splitext(target)[1].lower()
    if suffix not in suffixes:
        raise ValueError(
            f"cannot tell the format of {what} {target!r} from its suffix "
            f"{suffix or '(none)'!r}; the formats are {', '.join(suffixes)}"
        )
    if os.path.isdir(target):
        raise ValueError(f"{what} {target!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {what} {target!r} does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"the folder of {what} {target!r} is not writable: {folder}")
    return suffix
