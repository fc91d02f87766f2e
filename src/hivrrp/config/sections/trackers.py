"""Trackers: vrrp_script, vrrp_track_process, track_file, and the track_* lists that use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hivrrp.config.model import TrackFile, TrackProcess, TrackRef, VrrpScript
from hivrrp.config.sections.common import setter
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder

TRACK_WEIGHT_LIMITS = {"interface": 253, "script": 253, "file": 254, "process": 254}


def vrrp_script(b: Builder, node: Node) -> None:
    script = b.section(node, "script", VrrpScript, SCRIPT_HANDLERS)
    if script is None:
        return
    if script.script is None:
        b.diag.error(node.where, f"vrrp_script {script.name}: no 'script' given")
    b.unique(b.config.scripts, script.name, script, node, "vrrp_script")


def track_process(b: Builder, node: Node) -> None:
    tracker = b.section(node, "process tracker", TrackProcess, PROCESS_HANDLERS)
    if tracker is None:
        return
    if tracker.process is None:
        b.diag.error(node.where, f"vrrp_track_process {tracker.name}: no 'process' given")
    b.unique(b.config.track_processes, tracker.name, tracker, node, "vrrp_track_process")


def track_file(b: Builder, node: Node) -> None:
    name = b.named(node, "file tracker")
    if name is None:
        return
    if node.keyword == "vrrp_track_file":
        b.diag.warning(node.where, "vrrp_track_file is deprecated, use track_file")
    tracker = TrackFile(name, node.where)
    for child in b.block(node):
        b.dispatch(child, FILE_HANDLERS, frozenset(), f"track_file {name}", tracker)
    if tracker.path is None:
        b.diag.error(node.where, f"track_file {name}: no 'file' given")
    b.unique(b.config.track_files, name, tracker, node, "track_file")


def track_list(kind: str):
    limit = TRACK_WEIGHT_LIMITS[kind]

    def handler(b: Builder, node: Node, target) -> None:
        for child in b.block(node):
            weight, reverse = None, False
            words = list(child.args)
            while words:
                word = words.pop(0)
                if word == "weight" and words:
                    weight = b.integer(child, -limit, limit, value=words.pop(0))
                elif word == "reverse":
                    reverse = True
                elif word == "noreverse" and kind == "script":
                    reverse = False
                else:
                    b.diag.error(child.where, f"{node.keyword} {child.keyword}: unexpected "
                                              f"'{word}'")
                    break
            target.tracks.append(TrackRef(kind, child.keyword, weight, reverse, child.where))
    return handler


def _weight(b: Builder, node: Node, target, limit: int) -> None:
    value = b.integer(node, -limit, limit)
    if value is None:
        return
    target.weight = value
    for word in node.args[1:]:
        if word == "reverse":
            target.reverse = True
        else:
            b.diag.error(node.where, f"weight: unexpected '{word}'")


def _script_command(b: Builder, node: Node, script: VrrpScript) -> None:
    script.script = b.script(node)


def _script_user(b: Builder, node: Node, script: VrrpScript) -> None:
    if script.script is not None:
        script.script.user = b.arg(node)
        if len(node.args) > 1:
            script.script.group = node.args[1].lstrip(":")


SCRIPT_HANDLERS: dict[str, Callable] = {
    "script": _script_command,
    "interval": setter("interval", "timer", 0.001, 86400),
    "timeout": setter("timeout", "timer", 0, 86400),
    "weight": lambda b, node, s: _weight(b, node, s, 253),
    "rise": setter("rise", "int", 1, 1000),
    "fall": setter("fall", "int", 1, 1000),
    "user": _script_user,
    "init_fail": setter("init_fail", "bool"),
}


def _process(b: Builder, node: Node, tracker: TrackProcess) -> None:
    name = b.arg(node)
    if name is not None:
        tracker.process, tracker.params = name, list(node.args[1:])


def _param_match(b: Builder, node: Node, tracker: TrackProcess) -> None:
    value = node.args[0] if node.args else None
    if value not in (None, "initial", "partial"):
        b.diag.error(node.where, f"param_match: '{value}' is not initial or partial")
        return
    tracker.param_match = value or "exact"
    tracker.full_command = True


def _delay(b: Builder, node: Node, tracker: TrackProcess) -> None:
    value = b.timer(node, 0.000001, 3600)
    if value is not None:
        tracker.fork_delay = tracker.terminate_delay = value


PROCESS_HANDLERS: dict[str, Callable] = {
    "process": _process,
    "param_match": _param_match,
    "weight": lambda b, node, t: _weight(b, node, t, 254),
    "quorum": setter("quorum", "int", 1, 65535),
    "quorum_max": setter("quorum_max", "int", 0, 65535),
    "fork_delay": setter("fork_delay", "timer", 0.000001, 3600),
    "terminate_delay": setter("terminate_delay", "timer", 0.000001, 3600),
    "delay": _delay,
    "full_command": setter("full_command", "bool"),
}


def _init_file(b: Builder, node: Node, tracker: TrackFile) -> None:
    words = list(node.args)
    tracker.init_file = 0
    if words and words[0] != "overwrite":
        tracker.init_file = b.integer(node, -2147483648, 2147483647, value=words.pop(0)) or 0
    if words and words[0] == "overwrite":
        tracker.init_overwrite = True
        words.pop(0)
    if words:
        b.diag.error(node.where, f"init_file: unexpected '{' '.join(words)}'")


FILE_HANDLERS: dict[str, Callable] = {
    "file": setter("path", "word"),
    "weight": lambda b, node, t: _weight(b, node, t, 254),
    "init_file": _init_file,
}
