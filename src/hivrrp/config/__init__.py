"""Reading keepalived.conf: `load()` returns the model and every problem found."""

from __future__ import annotations

import gc
import socket
from dataclasses import dataclass, field

from hivrrp.config.diagnostics import Diagnostic, Diagnostics
from hivrrp.config.model import Config, compact


@dataclass
class LoadResult:
    config: Config
    errors: list[Diagnostic]
    warnings: list[Diagnostic]
    infos: list[Diagnostic] = field(default_factory=list)   # accepted, no effect on VRRP

    @property
    def ok(self) -> bool:
        """The daemon runs this configuration: no error stops it (keepalived's
        config errors that it corrects and runs with do not)."""
        return not self.fatal

    @property
    def fatal(self) -> list[Diagnostic]:
        return [d for d in self.errors if d.fatal]

    @property
    def clean(self) -> bool:
        """No error at all: what `hivrrp check` passes, as keepalived -t would."""
        return not self.errors


def default_config_id() -> str:
    """keepalived's default -i: the host name up to the first dot."""
    return socket.gethostname().split(".")[0]


def load(path: str, *, config_id: str | None = None, check_host: bool = True,
         check_scripts: bool = False) -> LoadResult:
    """check_scripts: judge every script as the daemon would and make one it
    would not run an error (hivrrp check, as keepalived -t); the daemon
    itself only logs those (hivrrp.notify.events.security_of) and runs."""
    # Loading allocates hundreds of thousands of objects that form no cycles;
    # the cyclic collector would rescan them again and again (it doubled the
    # load time of a 10,000-instance config), so it pauses for the duration.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(path, config_id, check_host, check_scripts)
    finally:
        if collecting:
            gc.enable()


def _load(path: str, config_id: str | None, check_host: bool,
          check_scripts: bool) -> LoadResult:
    # Imported here: the daemon has its files parsed by a child process
    # (hivrrp.config.isolated) and need not carry the reader for good.
    from hivrrp.config.build import build
    from hivrrp.config.builder import Builder
    from hivrrp.config.reader import Reader
    from hivrrp.config.tree import build_tree
    from hivrrp.config.validate import validate

    diag = Diagnostics()
    reader = Reader(diag, config_id if config_id is not None else default_config_id())
    tree = build_tree(reader.read(path), diag)
    config = build(Builder(diag), tree)
    validate(config, diag, check_host=check_host, check_scripts=check_scripts)
    compact(config)
    return LoadResult(config, diag.errors, diag.warnings, diag.infos)
