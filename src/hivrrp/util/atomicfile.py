"""Replace a file so that no reader ever sees part of it (keepalived's fopen_safe).

A new file next to the old one (O_EXCL, so nobody can slip one in first) is
written, then renamed over the old: a reader sees the old file or the new one,
and one holding the old file open keeps the old text. Used for track_file's
init_file and for the SIGUSR1/SIGUSR2 data and stats files.
"""

from __future__ import annotations

import errno
import os
import secrets

# Not tempfile.mkstemp: it always creates 0600, and track_file's init_file
# wants 0666 less the umask, which only the kernel applies without changing
# the process umask (other threads would see that).
NAME_TRIES = 8                  # O_EXCL clashes with a random name: a few tries


def write_atomically(path: str, data: bytes, mode: int | None = None) -> None:
    """`data` into `path`. mode None: 0666 less the umask, as keepalived
    creates files; else exactly `mode`. Raises OSError (no temporary file is
    left) for the caller to log."""
    directory, base = os.path.split(os.path.abspath(path))
    for _ in range(NAME_TRIES):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666 if mode is None else 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "no free temporary name", path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
