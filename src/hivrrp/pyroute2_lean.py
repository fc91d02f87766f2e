"""pyroute2's IPRoute without the rest of pyroute2.

`import pyroute2` runs a package __init__ that imports every protocol the
library speaks (NDB with sqlite3, IPDB, ipset, nl80211, wireguard, ...,
unittest.mock): about 6 MiB of every daemon's RSS, for one class we use.
install() puts a placeholder package in sys.modules, so that importing
pyroute2's submodules (pyroute2.iproute.linux and what it needs) does not run
that __init__; the first lookup of anything else on the package (someone's
`from pyroute2 import NDB`) runs the real __init__ into it, so other code in
the process sees the whole library as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

_lock = threading.Lock()


def install() -> None:
    with _lock:
        if "pyroute2" in sys.modules:
            return              # already imported, whole or lean
        spec = importlib.util.find_spec("pyroute2")
        if spec is None:
            return              # let the import fail where it is made, with its own message
        package = importlib.util.module_from_spec(spec)

        def __getattr__(attr: str):
            if not attr.startswith("__") and importlib.util.find_spec(
                    f"pyroute2.{attr}") is not None:
                return importlib.import_module(f"pyroute2.{attr}")   # a submodule: no __init__
            with _lock:
                if package.__dict__.get("__getattr__") is __getattr__:
                    del package.__getattr__
                    spec.loader.exec_module(package)
            return getattr(package, attr)

        package.__getattr__ = __getattr__
        sys.modules["pyroute2"] = package


def iproute_class():
    """pyroute2's IPRoute class, imported lean."""
    install()
    from pyroute2.iproute.linux import IPRoute
    return IPRoute
