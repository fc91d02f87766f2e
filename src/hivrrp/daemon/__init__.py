"""The daemon: the event loop's wiring, its policy (reactor) and the engine on sockets."""
