"""Files the toolkit reads and writes, handled as a hostile directory would demand: reads take
regular files only and stop at a limit (a topology, a profile: kilobytes), writes of secrets go
through a fresh name made exclusively (no planted file or link is ever followed or reused), mode
0600 from the first byte, flushed to disk, then renamed over the target."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MAX_TOPOLOGY_BYTES = 1024 * 1024  # a topology is a few kilobytes; a thousand networks ~0.3 MiB
MAX_PROFILE_BYTES = 64 * 1024  # an OpenVPN client profile with its certificates: ~5-10 KiB


class Unreadable(Exception):
    """Why a file cannot be taken: one phrase, never its contents."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The content of a regular file of at most `limit` bytes (a link to one is followed):
    devices, FIFOs, directories and larger files are refused before more than `limit` + 1
    bytes are read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise Unreadable("no such file") from None
    except IsADirectoryError:
        raise Unreadable("is a directory, not a file") from None
    except OSError as e:
        raise Unreadable(f"cannot be read: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable("is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise Unreadable("is not a regular file (a device, a pipe or a socket)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Unreadable(f"is larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as e:
        raise Unreadable(f"cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def _fresh(directory: Path, name: str) -> tuple[Path, int]:
    """A new file beside the target under a name no one could have planted: exclusive, never
    through a link, 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        temporary = directory / f".{name}.{secrets.token_hex(8)}.partial"
        try:
            return temporary, os.open(temporary, flags, 0o600)
        except FileExistsError:
            continue
    raise FileExistsError(f"no fresh name for a temporary file in {directory}")


def write_secret(path: Path, content: bytes) -> None:
    """`content` at `path`, readable by its owner only, whole or not at all."""
    temporary, fd = _fresh(path.parent, path.name)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)  # replaces a link at `path` itself, never its target
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)  # the rename, on disk
    except OSError:
        pass
    finally:
        os.close(directory)


def unwritable(path: Path) -> str | None:
    """Why a secret cannot be written at `path`, found without writing it (None: it can): the
    directory must take a new file (tried: a fresh file made and removed), and what is there
    already must be a regular file or a link."""
    directory = path.parent
    if not directory.is_dir():
        return f"{str(directory)!r} is not a directory"
    try:
        there = path.lstat()
    except FileNotFoundError:
        there = None
    except OSError as e:
        return f"{str(path)!r} cannot be looked at: {e.strerror}"
    if there is not None and stat.S_ISDIR(there.st_mode):
        return f"{str(path)!r} is a directory, not a file"
    if there is not None and not (stat.S_ISREG(there.st_mode) or stat.S_ISLNK(there.st_mode)):
        return f"{str(path)!r} is a special file (a device, a pipe or a socket), not a file"
    try:
        probe, fd = _fresh(directory, path.name)
    except OSError as e:
        return f"{str(directory)!r} does not take a new file: {e.strerror or e}"
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None
