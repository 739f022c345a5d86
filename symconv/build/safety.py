"""Cache safety: a path in the build cache -> a private directory, or the bytes of a private regular file, refused
when another user could have written it.

The threat: a cache on a shared path (``SYMCONV_CACHE_DIR=/shared/...``) where another user plants a module, a
manifest and an index entry, so that the victim's process loads the planted code. The rules are those of ssh's
``StrictModes`` and of git's ``safe.directory``: every directory of the cache, and every folder above it, must be
owned by us (or root above the cache) and writable by nobody else (a folder above may be, if sticky, as ``/tmp``);
what is created is created private whatever the umask; a file is opened without following a link and without
blocking, and only a regular file we own, no larger than a bound, is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final, Optional

__all__ = ["UnsafeCacheError", "MAX_READ", "check_root", "private_dir", "existing_dir", "read_private", "create_private"]

MAX_READ: Final = 1 << 30
"""The largest cache file read into memory (1 GiB): an extension is a few MB, a record a few kB."""

_OTHERS_WRITE: Final = stat.S_IWGRP | stat.S_IWOTH


class UnsafeCacheError(RuntimeError):
    """A directory of the build cache could have been written by another user; the message names it and the fix."""


def _owner() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _check_dir(path: Path, info: os.stat_result, *, above: bool) -> None:
    """Refuse ``path`` (an ``lstat`` result ``info``) unless only we (or root, above the cache) can change it."""
    me = _owner()
    if me < 0:  # no POSIX owners (Windows): nothing to compare
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeCacheError(f"build cache folder {path} is a symbolic link; remove it, or point "
                               "SYMCONV_CACHE_DIR at the real directory")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheError(f"build cache path {path} is not a directory; remove it or choose another "
                               "SYMCONV_CACHE_DIR")
    if info.st_uid != me and not (above and info.st_uid == 0):
        raise UnsafeCacheError(f"build cache folder {path} is owned by uid {info.st_uid}, not by this user "
                               f"(uid {me}); set SYMCONV_CACHE_DIR to a directory of your own")
    if info.st_mode & _OTHERS_WRITE and not (above and info.st_mode & stat.S_ISVTX):
        fix = f"chmod go-w {path}" if info.st_uid == me else "set SYMCONV_CACHE_DIR to a directory of your own"
        raise UnsafeCacheError(f"build cache folder {path} is writable by other users; {fix}")


def check_root(root: Path) -> Path:
    """The real path of the cache root ``root``, created private if missing, its folders and itself checked.

    A link in the root's own path is followed once, here (``~/.cache`` may be one); the folders above the
    real path must be owned by us or root and be sticky where others may write; the root must be ours alone.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as top:
    ...     oct(check_root(pathlib.Path(top) / "cache").stat().st_mode & 0o777)
    '0o700'
    """
    real = Path(os.path.realpath(root))
    for folder in reversed(real.parents):
        _make(folder)  # a missing folder above (a fresh ~/.cache) is created private, as XDG asks
        _check_dir(folder, os.lstat(folder), above=True)
    _make(real)
    _check_dir(real, os.lstat(real), above=False)
    return real


def private_dir(root: Path, *parts: str) -> Path:
    """``root/parts...``, each folder below the (checked) root created 0700 if missing and checked if present.

    A part is one plain name: no separator, no ``..``; a link is refused, never followed.
    """
    path = root
    for part in parts:
        if not part or part in (".", "..") or os.sep in part or (os.altsep and os.altsep in part):
            raise UnsafeCacheError(f"build cache folder name {part!r} is not a plain name")
        path = path / part
        _make(path)
        _check_dir(path, os.lstat(path), above=False)
    return path


def existing_dir(root: Path, part: str) -> Optional[Path]:
    """``root/part`` checked as ``private_dir`` checks it, or None if it does not exist (nothing is created)."""
    return private_dir(root, part) if os.path.lexists(root / part) else None


def _make(path: Path) -> None:
    if os.path.lexists(path):
        return
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:  # another process made it first; it is checked like any other
        return
    os.chmod(path, 0o700, follow_symlinks=False)  # the umask may have taken bits off; set exactly 0700


def _open_flags() -> int:
    return os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_private(path: Path, limit: int = MAX_READ) -> bytes:
    """The bytes of ``path`` if it is a regular file of ours that others cannot write, at most ``limit`` bytes.

    Raises ``OSError`` otherwise (``FileNotFoundError`` when missing): a link is not followed (``O_NOFOLLOW``),
    a FIFO or device is opened without blocking (``O_NONBLOCK``) and refused after ``fstat``, so reading the
    cache can neither hang nor fill the memory.
    """
    handle = os.open(path, _open_flags())
    try:
        info = os.fstat(handle)
        me = _owner()
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if me >= 0 and (info.st_uid != me or info.st_mode & _OTHERS_WRITE):
            raise OSError(f"{path} is owned or writable by another user")
        if info.st_size > limit:
            raise OSError(f"{path} is larger than {limit} bytes")
        chunks = []
        left = info.st_size
        while left > 0:
            chunk = os.read(handle, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(handle)


def create_private(path: Path, mode: int = 0o600) -> int:
    """A descriptor of ``path`` opened for appending (created with ``mode`` whatever the umask), never through a link."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if stat.S_IMODE(info.st_mode) != mode and info.st_uid == _owner():
            os.fchmod(handle, mode)
    except BaseException:
        os.close(handle)
        raise
    return handle
