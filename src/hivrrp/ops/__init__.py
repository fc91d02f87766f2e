"""Operator surfaces: control socket, metrics, dump files, pid file, systemd, logging."""
