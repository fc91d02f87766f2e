"""keepalived keywords hivrrp recognises but does not act on (warnings, not errors).

Taken from keepalived's parsers (global_parser.c, vrrp_parser.c, check_parser.c,
bfd_parser.c) and man page, so that a valid keepalived.conf never fails
`hivrrp check` for a keyword keepalived accepts.
"""

IGNORED_TOP_LEVEL = frozenset({
    # IPVS / checkers
    "virtual_server", "virtual_server_group", "SSL", "real_server",
    # BFD
    "bfd_instance",
    # global blocks that hivrrp does not manage
    "static_ipaddress", "static_routes", "static_rules", "linkbeat_interfaces",
    "interface_up_down_delays", "garp_group", "track_group", "track_bfd",
    # process-wide settings outside global_defs
    "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance", "use_pid_dir",
    "linkbeat_use_polling", "child_wait_time",
})

IGNORED_GLOBAL = frozenset({
    "vrrp_ipsets", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
    "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs_force",
    "process_monitor_rcv_bufs", "process_monitor_rcv_bufs_force", "vrrp_priority",
    "vrrp_rt_priority", "vrrp_no_swap", "vrrp_cpu_affinity", "vrrp_rlimit_rttime",
    "max_auto_priority", "min_auto_priority_delay", "vmac_addr_prefix",
    "fifo_write_vrrp_states_on_reload", "reload_check_config", "reload_time_file",
    "reload_repeat", "reload_file", "config_save_dir", "include_check", "data_use_instance",
    "json_file_location", "json_version",
    "tmp_config_directory", "vrrp_garp_extra_if",
    "vrrp_delay_after_boot", "smtp_alert_checker", "checker_log_all_failures", "no_email_faults",
    "default_interface", "process_names", "process_name", "vrrp_process_name",
    "checker_process_name", "bfd_process_name", "use_symlink_paths", "set_supplementary_groups",
    "startup_script", "startup_script_timeout", "shutdown_script", "shutdown_script_timeout",
    "lvs_sync_daemon", "lvs_timeouts", "lvs_flush", "lvs_flush_on_stop", "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force", "checker_priority", "checker_rt_priority",
    "checker_no_swap", "checker_cpu_affinity", "checker_rlimit_rttime", "bfd_priority",
    "bfd_rt_priority", "bfd_no_swap", "bfd_cpu_affinity", "bfd_rlimit_rttime", "snmp_socket",
    "enable_snmp_vrrp", "enable_snmp_keepalived", "enable_snmp_rfc", "enable_snmp_rfcv2",
    "enable_snmp_rfcv3", "enable_snmp_checker", "enable_traps", "enable_dbus",
    "enable_dbus_instance", "vrrp_garp_extra_if_all", "random_seed", "uuid", "linkbeat_use_polling",
    "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance", "use_pid_dir",
    "child_wait_time", "umask", "vrrp_version_strict", "dynamic_interfaces_allow_if_changes",
    "vrrp_track_process", "network_timeout", "nftables_rules_keep",
})

IGNORED_INSTANCE = frozenset({
    "use_vmac_addr", "use_ipvlan", "vrf", "auth_hmac", "track_bfd",
    "garp_extra_if", "kernel_rx_buf_size", "track_src_ip", "unicast_fault_no_peer",
    "old_unicast_checksum", "promote_secondaries", "no_virtual_ipaddress",
    "timer_expired_backup", "native_ipv6", "linkbeat_use_polling",
    "notify_master_rx_lower_pri_script", "smtp_alert_vrrp",
})

IGNORED_SYNC_GROUP = frozenset({"global_tracking", "track_bfd"})

# hivrrp's own keywords, for settings keepalived does not have. Each starts
# with "hivrrp_" so that a reader of the file sees it is not keepalived's, and
# no future keepalived keyword can take its name. keepalived 2.2.7 reports
# them ("Unknown keyword", `keepalived -t` exits 5): a file shared with
# keepalived keeps them behind an `@ID` line that only hivrrp's config id
# (-i) selects, or in a file only hivrrp includes.
HIVRRP_GLOBAL = frozenset({
    "hivrrp_notify_script_timeout",       # seconds, 0: none (the default, as keepalived)
    "hivrrp_notify_script_concurrency",   # notify processes at once, daemon-wide
})

# hivrrp's own vrrp_instance keywords: follower instances (docs/followers.md).
# Not prefixed: `follow` is the vendors' word for it (HPE Comware, Cisco
# IOS-XR), and a file that uses it cannot be shared with keepalived anyway:
# keepalived 2.2.7 reports "Unknown keyword 'follow'" (-t exits 5) and runs
# the instance as one that elects on its own, so both routers must run hivrrp.
HIVRRP_INSTANCE = frozenset({
    "follow",            # NAME: the leader whose state this instance takes
    "follow_refresh",    # seconds between a master follower's refreshes, 0: never
})

# Keywords hivrrp parses into the model but the daemon does not act on yet,
# with what happens instead. One entry per keyword, consulted wherever a
# keyword is dispatched, so that a config relying on one never passes
# `hivrrp check` silently. The change that implements a keyword removes its
# entry (and its sample in tests/config/test_not_acted_on.py).
_UNICAST_SRC = ("unicast adverts are always accepted only from the unicast_peer addresses, "
                "whatever this says")
_ADV_ADDR = ("the address list of every advert is checked and a mismatch drops the advert, "
             "whatever this says")
_TTL = "adverts are accepted only with TTL (hop limit) 255, whatever this says"

# Keywords that affect nothing VRRP does: keepalived's e-mail alerts, and the
# router_id that only names the sender of those. One info line for all of them
# (diagnostics.NoEffect), not a warning each.
NO_VRRP_EFFECT = frozenset({
    "router_id", "notification_email", "notification_email_from", "smtp_server",
    "smtp_connect_timeout", "smtp_helo_name", "smtp_alert", "smtp_alert_vrrp",
})

NOT_ACTED_ON: dict[str, str] = {
    # global_defs
    "vrrp_check_unicast_src": _UNICAST_SRC,
    "vrrp_skip_check_adv_addr": _ADV_ADDR,
    "vrrp_startup_delay": "instances start at once, without the delay",
    "dynamic_interfaces": ("interfaces that appear or come back later are always picked up, "
                           "whatever this says"),
    "log_unknown_vrids": "adverts for unknown VRIDs are counted, not logged",
    # vrrp_instance
    "unicast_ttl": "unicast adverts are sent with TTL (hop limit) 255",
    "min_ttl": _TTL,
    "max_ttl": _TTL,
    "check_unicast_src": _UNICAST_SRC,
    "skip_check_adv_addr": _ADV_ADDR,
}
