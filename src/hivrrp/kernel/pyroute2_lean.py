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

# Held while the placeholder is set up and while the real __init__ runs: other
# threads wait for a whole package. Reentrant, because that __init__ looks up
# names on the package itself on this thread while it runs. (Only a full
# `import pyroute2` elsewhere in the process takes that path; the daemon never.)
_lock = threading.RLock()


def install() -> None:
    with _lock:
        if "pyroute2" in sys.modules:
            return              # already imported, whole or lean
        spec = importlib.util.find_spec("pyroute2")
        if spec is None:
            return              # let the import fail where it is made, with its own message
        package = importlib.util.module_from_spec(spec)
        initialising = []

        def __getattr__(attr: str):
            if not attr.startswith("__") and importlib.util.find_spec(
                    f"pyroute2.{attr}") is not None:
                return importlib.import_module(f"pyroute2.{attr}")   # a submodule: no __init__
            with _lock:
                if initialising:
                    # The real __init__, on this thread, asking for what it has
                    # not defined yet: as for any module being initialised.
                    raise AttributeError(f"partially initialised module 'pyroute2' has no "
                                         f"attribute {attr!r}")
                if package.__dict__.get("__getattr__") is __getattr__:
                    initialising.append(True)
                    try:
                        spec.loader.exec_module(package)
                    finally:
                        initialising.clear()
                    # Only once it worked: a failed __init__ is tried again next time.
                    # And only ours: a later pyroute2 may define its own.
                    if package.__dict__.get("__getattr__") is __getattr__:
                        del package.__getattr__
            try:
                return package.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module 'pyroute2' has no attribute {attr!r}") from None

        package.__getattr__ = __getattr__
        sys.modules["pyroute2"] = package


def iproute_class():
    """pyroute2's IPRoute class, imported lean."""
    install()
    from pyroute2.iproute.linux import IPRoute
    return IPRoute
