"""hivrrp: a VRRP daemon for thousands of instances that reads keepalived.conf."""


def __getattr__(name: str) -> str:
    # Looked up when first asked for, and from the METADATA file next to the
    # package where there is one: importlib.metadata brings email, zipfile
    # and csv along, 2.4 MB of a daemon that only logs the version at start.
    if name != "__version__":
        raise AttributeError(f"module 'hivrrp' has no attribute {name!r}")
    found = _installed_version()
    if found is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("hivrrp")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "0+unknown"
    globals()["__version__"] = found
    return found


def _installed_version() -> str | None:
    import os

    site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        infos = [entry for entry in os.listdir(site)
                 if entry.startswith("hivrrp-") and entry.endswith(".dist-info")]
        if len(infos) != 1:
            return None        # none (a source tree), or stale ones: ask importlib
        with open(os.path.join(site, infos[0], "METADATA"), encoding="utf-8") as metadata:
            for line in metadata:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    return None    # the headers ended without one
    except OSError:
        return None
    return None
