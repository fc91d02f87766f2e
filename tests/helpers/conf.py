"""Helpers for configuration tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hivrrp.config import load
from hivrrp.config.diagnostics import Diagnostics
from hivrrp.config.reader import Reader


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def lines_of(directory: Path, text: str, config_id: str = "main"):
    """Logical lines (as token tuples) and the diagnostics of a config text."""
    path = write(directory, "keepalived.conf", text)
    diag = Diagnostics()
    lines = Reader(diag, config_id).read(str(path))
    return [line.tokens for line in lines], diag


def load_text(directory: Path, text: str, config_id: str = "main"):
    return load(str(write(directory, "keepalived.conf", text)), config_id=config_id,
                check_host=False)


def messages(diagnostics) -> list[tuple[int, str]]:
    return [(d.where.line, d.message) for d in diagnostics]


INSTANCE = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.26/24
    }
"""


def one_instance(directory: Path, body: str = "", *, prefix: str = "", config_id: str = "main"):
    """Load a config with one instance (VRID 51 on eth0) plus extra keywords."""
    text = prefix + INSTANCE + textwrap.indent(textwrap.dedent(body), "    ") + "}\n"
    result = load_text(directory, text, config_id)
    return result, (result.config.instances[0] if result.config.instances else None)
