"""Shell scripts for notify and script-runner tests, and whether a pid lives."""

from __future__ import annotations

from hivrrp.config.model import Script


def make(tmp_path, name: str, body: str, mode: int = 0o755) -> Script:
    """A /bin/sh script `name` in tmp_path running `body`."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return Script(command=str(path), argv=[str(path)])


def alive(pid: int) -> bool:
    """A zombie counts as dead: it has exited, only its entry remains."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
