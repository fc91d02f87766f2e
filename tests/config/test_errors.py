"""Every problem, reported with its FILE:LINE, all in one run; garbage never raises."""

from hypothesis import given
from hypothesis import strategies as st

from helpers.conf import load_text, messages, write
from hivrrp.config import load


def test_every_problem_in_one_run_with_exact_lines(tmp_path):
    result = load_text(tmp_path, """\
        global_defs {
            router_idd lb1
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 300
            priority 0
            advert_int fast
            state ACTIVE
            virtual_ipaddress {
                192.0.2.1/24
            }
            frobnicate yes
        }
        vrrp_instance VI_2 {
            interface eth0
            virtual_router_id 7
            virtual_ipaddress {
                192.0.2.7
            }
        }
        vrrp_instance VI_3 {
            interface eth0
            virtual_router_id 7
            virtual_ipaddress {
                192.0.2.8
            }
        }
        vrrp_instance VI_4 {
            virtual_ipaddress {
                192.0.2.9
            }
        }
        """)
    assert messages(result.errors) == [
        (2, "unknown keyword 'router_idd' in global_defs"),
        (6, "virtual_router_id: 300 is out of range 1..255"),
        (7, "priority: 0 is out of range 1..255"),
        (8, "advert_int: 'fast' is not a number of seconds"),
        (9, "state: 'ACTIVE' is not MASTER or BACKUP"),
        (13, "unknown keyword 'frobnicate' in vrrp_instance VI_1"),
        # VI_1 is dropped for its bad VRID without a second error about it.
        (29, "vrrp_instance VI_4: virtual_router_id is not set"),
        (22, "vrrp_instance VI_3: VRID 7 on eth0 (IPv4) is already used by VI_2 at "
             f"{tmp_path / 'keepalived.conf'}:15"),
    ]


def test_errors_inside_includes_carry_the_include_chain(tmp_path):
    write(tmp_path, "instances/vi.conf", """\
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            priority 999
            virtual_ipaddress {
                192.0.2.1
            }
        }
        """)
    write(tmp_path, "middle.conf", "include instances/*.conf\n")
    main = write(tmp_path, "keepalived.conf", "# top\ninclude middle.conf\n")
    result = load(str(main), check_host=False)
    [error] = result.errors
    assert error.where.file == str(tmp_path / "instances/vi.conf") and error.where.line == 4
    text = str(error)
    assert text.startswith(f"{tmp_path / 'instances/vi.conf'}:4: error: priority: 999")
    assert f"included from {tmp_path / 'middle.conf'}:1 < {main}:2" in text


def test_errors_inside_generated_sections_name_the_definition_and_the_expansion(tmp_path):
    result = load_text(tmp_path, """\
        $VI= \\
        vrrp_instance vi_${N} { \\
            interface eth0 \\
            virtual_router_id ${VRID} \\
            virtual_ipaddress { \\
                192.0.2.${N} \\
            } \\
        }
        ~LST({N, VRID}, {1, 10}, {2, 256}, {3, 30}) $VI
        """)
    [error] = result.errors
    assert error.where.line == 4  # where "virtual_router_id ${VRID}" is written
    assert error.message == "virtual_router_id: 256 is out of range 1..255"
    assert "N=2, VRID=256" in str(error) and "$VI expanded at" in str(error)
    assert f"{tmp_path / 'keepalived.conf'}:9" in str(error)
    assert [i.name for i in result.config.instances] == ["vi_1", "vi_3"]


def test_brace_errors(tmp_path):
    result = load_text(tmp_path, """\
        global_defs {
            router_id x
        }
        }
        vrrp_instance VI_1 {
            interface eth0
        """)
    assert messages(result.errors) == [
        (4, "extra '}' found"),
        (5, "'vrrp_instance' block is never closed (missing '}')"),
        (5, "vrrp_instance VI_1: virtual_router_id is not set"),
    ]


def test_value_keyword_given_a_block_and_vice_versa(tmp_path):
    result = load_text(tmp_path, """\
        vrrp_instance VI_1 {
            priority { 100 }
            virtual_ipaddress 192.0.2.1
            interface eth0
            virtual_router_id 5
        }
        """)
    assert messages(result.errors) == [
        (2, "priority does not take a '{' block"),
        (3, "virtual_ipaddress: expected a '{' block"),
        (1, "(VI_1) No VIP specified; at least one is sensible"),   # so none was read
    ]


def test_duplicates(tmp_path):
    result = load_text(tmp_path, """\
        vrrp_script s {
            script /bin/true
        }
        vrrp_script s {
            script /bin/false
        }
        vrrp_instance A {
            interface eth0
            virtual_router_id 1
        }
        vrrp_instance A {
            interface eth0
            virtual_router_id 2
        }
        vrrp_sync_group G {
            group {
                A
                B
            }
        }
        """)
    found = messages(result.errors)
    assert (4, f"vrrp_script s is already defined at {tmp_path / 'keepalived.conf'}:1") in found
    assert (11, f"vrrp_instance A is already defined at {tmp_path / 'keepalived.conf'}:7") in found
    assert (15, "vrrp_sync_group G: no vrrp_instance named B") in found


def test_unicast_instances_may_share_a_vrid_with_other_peers(tmp_path):
    body = """
        vrrp_instance {name} {{
            interface eth0
            virtual_router_id 9
            unicast_peer {{
                {peer}
            }}
            virtual_ipaddress {{
                192.0.2.{n}
            }}
        }}
    """
    text = (body.format(name="A", peer="10.0.0.2", n=1) + body.format(name="B", peer="10.0.0.3", n=2)
            + body.format(name="C", peer="10.0.0.3", n=3))
    result = load_text(tmp_path, text)
    [error] = result.errors
    assert "VRID 9" in error.message and "used by B" in error.message


def test_binary_garbage(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_bytes(b"\x00\xff\xfe garbage\nvrrp_instance \x00 {\n\x89PNG\r\n\x1a\n" + bytes(range(256)))
    result = load(str(path), check_host=False)
    assert not result.ok
    assert any("binary data" in e.message for e in result.errors)


def test_deeply_nested_braces_and_huge_lines(tmp_path):
    result = load_text(tmp_path, "a {\n" * 5000 + "}\n" * 5000)
    assert any("nested more than" in e.message for e in result.errors)
    result = load_text(tmp_path, "router_id " + "x" * 100_000 + "\n")
    assert any("line too long" in e.message for e in result.errors)
    result = load_text(tmp_path, "{" * 100_000 + "\n")
    assert not result.ok


@given(st.text(alphabet=st.sampled_from(list('{}"\'$@~!#\\\n\t abc123()=,.:/')), max_size=300))
def test_random_text_never_raises(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "keepalived.conf"
    path.write_text(text)
    result = load(str(path), check_host=False)  # must not raise
    for diagnostic in result.errors + result.warnings:
        assert diagnostic.where.line >= 0 and diagnostic.message


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzzb") / "keepalived.conf"
    path.write_bytes(data)
    load(str(path), check_host=False)
