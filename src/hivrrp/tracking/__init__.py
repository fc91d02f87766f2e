"""Trackers that move VRRP instance priorities: vrrp_script, track_file, track_process."""
