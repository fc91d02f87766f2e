"""Tools beside the daemon: the lab, the simulator and the capture decoder."""
