"""hivrrp: a VRRP daemon for thousands of instances that reads keepalived.conf."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hivrrp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
