"""keepalived's configuration syntax: comments, quoting, blocks, includes and macros."""

import os

import pytest

from helpers.conf import lines_of, messages, write
from hivrrp.config.diagnostics import Diagnostics
from hivrrp.config.reader import Reader, expand_braces, strip_comment, tokenize


@pytest.mark.parametrize("text, expected", [
    ("a b # comment", "a b "),
    ("a ! comment", "a "),
    ('script "x # y" # real comment', 'script "x # y" '),
    (r"auth_pass a\#b\!c", "auth_pass a#b!c"),
    ("no comment", "no comment"),
])
def test_comments(text, expected):
    assert strip_comment(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("a  b\tc", ("a", "b", "c")),
    ('"abcd efg h jkl mnop"', ("abcd efg h jkl mnop",)),
    ('abcd" efg h jkl "mnop', ("abcd efg h jkl mnop",)),          # man page example
    ('abcd "efg h jkl" mnop', ("abcd", "efg h jkl", "mnop")),
    ("vrrp_instance VI{ x }", ("vrrp_instance", "VI", "{", "x", "}")),
    ('x "{ not a brace }"', ("x", "{ not a brace }")),
    ('""', ("",)),
])
def test_tokens(text, expected):
    assert tokenize(text) == expected


def test_brace_on_the_next_line_and_one_line_blocks(tmp_path):
    lines, diag = lines_of(tmp_path, """
        global_defs
        {
            router_id r1 }
        virtual_ipaddress { 192.0.2.1 192.0.2.2 }
    """)
    assert lines == [("global_defs",), ("{",), ("router_id", "r1", "}"),
                     ("virtual_ipaddress", "{", "192.0.2.1", "192.0.2.2", "}")]
    assert not diag.items


def test_include_relative_to_the_including_file_with_glob_and_braces(tmp_path):
    write(tmp_path, "conf.d/a.conf", "from_a 1\n")
    write(tmp_path, "conf.d/b.conf", "from_b 2\ninclude ../deeper/*.conf\n")
    write(tmp_path, "deeper/c.conf", "from_c ${_PWD}\n")
    write(tmp_path, "other/x.conf", "from_x\n")
    lines, diag = lines_of(tmp_path, """
        top 0
        include conf.d/*.conf
        include {other,missing}/x.conf
        end
    """)
    assert lines == [("top", "0"), ("from_a", "1"), ("from_b", "2"),
                     ("from_c", str(tmp_path / "deeper")), ("from_x",), ("end",)]
    assert not diag.errors


def test_include_problems(tmp_path):
    write(tmp_path, "loop1.conf", "include loop2.conf\n")
    write(tmp_path, "loop2.conf", "x\ninclude loop1.conf\n")
    lines, diag = lines_of(tmp_path, """
        include loop1.conf
        include nothing-here/*.conf
        includer missing.conf
    """)
    assert lines == [("x",)]
    [cycle, missing] = diag.errors
    assert "include cycle" in cycle.message and cycle.where.line == 2
    assert cycle.where.file.endswith("loop2.conf")
    assert "loop1.conf" in cycle.where.context()  # how we got there
    assert missing.where.line == 4 and "missing.conf" in missing.message
    assert [w.where.line for w in diag.warnings] == [3]  # plain include: a warning


def test_definitions_are_substituted_at_use_time(tmp_path):
    # The man page's example, plus undefined parameters left alone.
    lines, _ = lines_of(tmp_path, """
        $ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}
        $ADDRESS_BASE_SUB=0
        ${ADDRESS_BASE}.100/32
        $ADDRESS_BASE_SUB=10
        ${ADDRESS_BASE}.100/32
        $NAME value
        x $NAME ${NAME}y $NAMEz ${UNDEFINED} $UNDEF2
        $EMPTY=
        a${EMPTY}b
    """)
    assert lines == [("10.2.0.100/32",), ("10.2.10.100/32",), ("$NAME", "value"),
                     ("x", "$NAME", "${NAME}y", "$NAMEz", "${UNDEFINED}", "$UNDEF2"),
                     ("ab",)]


def test_definition_with_spaces_and_use_with_trailing_space(tmp_path):
    lines, _ = lines_of(tmp_path, """
        $PRIO=200
        priority $PRIO
        priority ${PRIO}0
    """)
    assert lines == [("priority", "200"), ("priority", "2000")]


def test_recursive_definition_is_an_error_not_a_hang(tmp_path):
    lines, diag = lines_of(tmp_path, """
        $A=x${A}
        value ${A}
    """)
    assert lines == []
    assert messages(diag.errors) == [(3, "parameter substitution too deep (recursive "
                                         "definition?)")]


def test_conditional_lines(tmp_path):
    text = """
        @main router_id main_router
        @backup router_id backup_router
        @^main peer 1.2.3.4
        @^backup peer 1.2.3.5
        @main
        $IF_MAIN=@main
        $IF_MAIN priority 240
    """
    main, _ = lines_of(tmp_path, text, "main")
    backup, _ = lines_of(tmp_path, text, "backup")
    other, _ = lines_of(tmp_path, text, "other")
    assert main == [("router_id", "main_router"), ("peer", "1.2.3.5"), ("priority", "240")]
    assert backup == [("router_id", "backup_router"), ("peer", "1.2.3.4")]
    assert other == [("peer", "1.2.3.4"), ("peer", "1.2.3.5")]


def test_multiline_definitions_nest_and_keep_their_line_numbers(tmp_path):
    lines, diag = lines_of(tmp_path, """
        $RS= \\
        real ${N}.${M} \\
        @main mainonly ${M}
        $OUTER= \\
        block ${N} { \\
            $M=1 \\
            $RS \\
            $M=2 \\
            $RS \\
        }
        $N=7
        $OUTER
    """)
    assert lines == [("block", "7", "{"), ("real", "7.1"), ("mainonly", "1"), ("real", "7.2"),
                     ("mainonly", "2"), ("}",)]
    reader_lines = Reader(Diagnostics(), "main").read(str(tmp_path / "keepalived.conf"))
    real = [line for line in reader_lines if line.tokens[0] == "real"][0]
    assert real.where.line == 3  # where "real ${N}.${M}" is written
    assert "$RS expanded" in real.where.note and "$OUTER expanded at" in real.where.note
    assert not diag.items


def test_unterminated_multiline_definition(tmp_path):
    _, diag = lines_of(tmp_path, "$X= \\\na \\\n")
    assert [d.message for d in diag.errors] == ["multi-line definition of $X not terminated"]


def test_predefined_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVRRP_TEST_VAR", "from-env")
    lines, _ = lines_of(tmp_path, """
        pwd ${_PWD}
        instance ${_INSTANCE}
        hash a${_HASH}b bang ${_BANG}
        env ${_ENV HIVRRP_TEST_VAR}
        random ${_RANDOM 5 9}
    """, config_id="lb1")
    assert lines[0] == ("pwd", str(tmp_path))
    assert lines[1] == ("instance", "lb1")
    assert lines[2] == ("hash", "a#b", "bang", "!")
    assert lines[3] == ("env", "from-env")
    assert 5 <= int(lines[4][1]) <= 9


@pytest.mark.parametrize("spec, values", [
    ("N, 0, 3", ["0", "1", "2", "3"]),
    ("N, 3", ["1", "2", "3"]),
    ("N, -2", ["-1", "-2"]),
    ("N, 5, 1", ["5", "4", "3", "2", "1"]),
    ("N, 1, 3, 8", ["1", "4", "7"]),
    ("N, 10, -4, 0", ["10", "6", "2"]),
    ("N, 0x10, 0x12", ["16", "17", "18"]),
])
def test_seq(tmp_path, spec, values):
    lines, diag = lines_of(tmp_path, f"~SEQ({spec}) v ${{N}}\n")
    assert [line[1] for line in lines] == values
    assert not diag.items


def test_seqx_and_nested_generators(tmp_path):
    lines, _ = lines_of(tmp_path, """
        ~SEQx(SUBNET, 0x90, 0x10, 0xc0) ip_address fe80::20:${SUBNET}:1
        ~SEQ(A, 1, 2) ~SEQ(B, 1, 3) pair ${A}.${B}
    """)
    assert lines[:4] == [("ip_address", f"fe80::20:{x}:1") for x in ("90", "a0", "b0", "c0")]
    assert [line[1] for line in lines[4:]] == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3"]


def test_lst_forms_from_the_man_page(tmp_path):
    lines, _ = lines_of(tmp_path, """
        ~LST({IP, IP1}, {10,1},{20,4},{5,6},{12,8}) 192.168.${IP}.${IP1}
        ~LST(IP, 1, 2) ~LST(IP1, 5,6,7) 192.169.${IP}.${IP1}
        ~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,172) 192.${IP2}.${IP}.${IP1}
    """)
    flat = [line[0] for line in lines]
    assert flat[:4] == ["192.168.10.1", "192.168.20.4", "192.168.5.6", "192.168.12.8"]
    assert flat[4:10] == ["192.169.1.5", "192.169.1.6", "192.169.1.7", "192.169.2.5",
                          "192.169.2.6", "192.169.2.7"]
    assert flat[10:] == ["192.168.10.1", "192.170.10.1", "192.172.10.1", "192.168.20.4",
                         "192.170.20.4", "192.172.20.4"]


def test_generator_with_multiline_definition_and_variables_do_not_leak(tmp_path):
    lines, _ = lines_of(tmp_path, """
        $VI= \\
        vrrp_instance vi_${IF}_${ID} { \\
            virtual_router_id ${ID} \\
        }
        ~SEQ(IF, 0, 1) ~SEQ(ID, 1, 2) $VI
        after ${IF}
    """)
    names = [line[1] for line in lines if line[0] == "vrrp_instance"]
    assert names == ["vi_0_1", "vi_0_2", "vi_1_1", "vi_1_2"]
    assert lines[-1] == ("after", "${IF}")


@pytest.mark.parametrize("line, message", [
    ("~SEQ(N, 1, 0, 5) x", "step must not be 0"),
    ("~SEQ(N) x", "expected (var, [start,] [step,] end)"),
    ("~SEQ(1N, 3) x", "bad variable name"),
    ("~SEQ(N, a) x", "integers"),
    ("~SEQ(N, 3 x", "no closing ')'"),
    ("~LST({A,B},{1}) x", "2 variables but 1 value"),
    ("~LST(A) x", "expected (var, value, ...)"),
    ("~SEQ(N, 0, 9999999) x", "would generate"),
])
def test_generator_errors(tmp_path, line, message):
    lines, diag = lines_of(tmp_path, line + "\n")
    assert lines == []
    [error] = diag.errors
    assert message in error.message and error.where.line == 1


def test_brace_expansion():
    assert expand_braces("{foo/{,cat,dog},bar}") == ["foo/", "foo/cat", "foo/dog", "bar"]
    assert expand_braces("a{1,2}b{x,y}") == ["a1bx", "a1by", "a2bx", "a2by"]
    assert expand_braces("plain") == ["plain"]
    assert expand_braces("open{") == ["open{"]


def test_files_that_cannot_be_read(tmp_path):
    diag = Diagnostics()
    assert Reader(diag, "x").read(str(tmp_path / "absent.conf")) == []
    os.mkdir(tmp_path / "dir.conf")
    assert Reader(diag, "x").read(str(tmp_path / "dir.conf")) == []
    assert len(diag.errors) == 2 and all(d.where.line == 0 for d in diag.errors)
