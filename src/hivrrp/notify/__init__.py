"""Notify scripts and FIFO, and running external commands as keepalived does."""
