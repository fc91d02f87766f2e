"""global_defs' firewall keywords and accept/no_accept, read as keepalived 2.2.7 reads them
(global_parser.c: vrrp_nftables_handler, vrrp_iptables_handler for a build without
iptables, as Debian's; vrrp_parser.c: accept/no_accept)."""

import pytest

from helpers.conf import messages, one_instance


def globals_of(tmp_path, lines: str):
    result, _ = one_instance(tmp_path, prefix="global_defs {\n" + lines + "}\n")
    assert result.ok, result.errors
    return result, result.config.global_defs


def test_nothing_said_no_table_named(tmp_path):
    result, g = globals_of(tmp_path, "")
    assert (g.nftables_table, g.nftables_priority, g.nftables_counters) == (None, -1, False)


@pytest.mark.parametrize(("lines", "table", "priority"), [
    ("nftables\n", "hivrrp", -1),
    ("nftables fw\n", "fw", -1),
    ("nftables fw\nnftables_priority -5\n", "fw", -5),
    ("nftables_priority 7\n", None, 7),
    # keepalived's `nftables` puts the priority back to -1, whatever came before.
    ("nftables_priority 7\nnftables\n", "hivrrp", -1),
])
def test_table_name_and_priority(tmp_path, lines, table, priority):
    result, g = globals_of(tmp_path, lines)
    assert (g.nftables_table, g.nftables_priority) == (table, priority)
    assert result.warnings == []


def corrected(result) -> list[tuple[int, str]]:
    """keepalived's config errors that it runs with: -t exits 5, the daemon runs."""
    assert result.ok and all(not d.fatal for d in result.errors), result.errors
    return messages(result.errors)


def test_the_first_nftables_wins(tmp_path):
    result, g = globals_of(tmp_path, "nftables one\nnftables two\n")
    assert g.nftables_table == "one"
    assert corrected(result) == [(3, "nftables already specified - ignoring")]


@pytest.mark.parametrize("name", ["t" * 256, "\u00e9" * 128])
def test_a_table_name_the_kernel_refuses_is_ignored(tmp_path, name):
    # Measured in bytes, as keepalived (strlen) and the kernel: 128 'é' are 256 bytes,
    # which the kernel refuses (ERANGE). Ignored, the table is the default one.
    from hivrrp.kernel.firewall_policy import Settings

    result, g = globals_of(tmp_path, f"nftables {name}\n")
    assert g.nftables_table is None and Settings.of(g).table == "hivrrp"
    assert corrected(result) == [(2, "nftables table name too long - ignoring")]


def test_the_longest_table_name_the_kernel_takes_is_kept(tmp_path):
    name = "\u00e9" * 127 + "t"       # 255 bytes and the NUL
    result, g = globals_of(tmp_path, f"nftables {name}\n")
    assert g.nftables_table == name and result.clean


def test_vrrp_iptables_means_nftables_and_says_so(tmp_path):
    result, g = globals_of(tmp_path, "vrrp_iptables IN OUT\nnftables mine\n")
    assert (g.nftables_table, g.nftables_priority) == ("hivrrp", -1)
    assert messages(result.warnings) == [
        (2, "hivrrp filters with nftables, not iptables: vrrp_iptables means an nftables "
            "table 'hivrrp'; replace it with 'nftables'")]
    assert corrected(result) == [(3, "nftables already specified - ignoring")]


def test_counters_and_ifindex(tmp_path):
    result, g = globals_of(tmp_path, "nftables_counters\nnftables_ifindex\n")
    assert g.nftables_counters is True
    assert result.warnings == []


def test_a_bad_priority_is_an_error(tmp_path):
    result, _ = one_instance(tmp_path, prefix="global_defs {\nnftables_priority low\n}\n")
    assert messages(result.errors) == [(2, "nftables_priority: 'low' is not an integer")]


@pytest.mark.parametrize(("keyword", "accept"), [("", True), ("accept\n", True),
                                                ("no_accept\n", False)])
def test_accept_modes_load_without_a_warning(tmp_path, keyword, accept):
    result, inst = one_instance(tmp_path, keyword)
    assert result.ok and result.warnings == []
    assert inst.accept is accept
