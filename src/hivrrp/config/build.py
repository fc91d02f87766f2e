"""The keyword tree -> the model, checked keyword by keyword as keepalived does.

Semantics and defaults follow keepalived 2.2.7's parser and vrrp_parser.c, checked
against keepalived -t in tests/config. Unknown keywords are errors: a typo must not pass
silently. Keywords keepalived has but hivrrp does not act on are warnings naming them.
"""

from __future__ import annotations

from collections.abc import Callable

from hivrrp.config import keywords
from hivrrp.config.builder import Builder
from hivrrp.config.model import Config
from hivrrp.config.sections.global_defs import global_defs
from hivrrp.config.sections.instance import instance
from hivrrp.config.sections.sync_group import sync_group
from hivrrp.config.sections.trackers import track_file, track_process, vrrp_script
from hivrrp.config.tree import Node

# One handler per top-level section (config/sections/, one module each). The
# handlers get a Builder (config/builder.py) and never import this module, so
# the import graph has no circle.
TOP_LEVEL: dict[str, Callable[[Builder, Node], None]] = {
    "global_defs": global_defs,
    "vrrp_instance": instance,
    "vrrp_sync_group": sync_group,
    "vrrp_script": vrrp_script,
    "vrrp_track_process": track_process,
    "track_file": track_file,
    "vrrp_track_file": track_file,
}


def build(builder: Builder, nodes: list[Node]) -> Config:
    for node in nodes:
        if node.keyword in TOP_LEVEL:
            builder.not_acted_on(node.keyword, node)
            TOP_LEVEL[node.keyword](builder, node)
        elif node.keyword in keywords.IGNORED_TOP_LEVEL:
            builder.diag.warning(node.where, f"'{node.keyword}' is not supported by hivrrp "
                                             "(keepalived's IPVS, BFD and static parts are "
                                             "not implemented); the section is ignored")
        else:
            builder.diag.error(node.where, f"unknown keyword '{node.keyword}'")
    builder.no_effect.report(builder.diag)
    return builder.config
