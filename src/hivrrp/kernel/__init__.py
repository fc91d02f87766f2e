"""The kernel side: netlink, raw sockets, VIPs and routes, gratuitous ARP / NA."""
