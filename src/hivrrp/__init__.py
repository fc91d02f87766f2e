"""hivrrp: a VRRP daemon for thousands of instances that reads keepalived.conf."""


def __getattr__(name: str) -> str:
    # Looked up when first asked for: importlib.metadata brings email, zipfile
    # and csv along, a megabyte and more of a daemon that never prints it.
    if name != "__version__":
        raise AttributeError(f"module 'hivrrp' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("hivrrp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
