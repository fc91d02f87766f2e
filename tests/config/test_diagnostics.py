"""How diagnostics are printed."""

from hivrrp.config.diagnostics import Diagnostic, Where, condense


def warning(line: int, keyword: str | None, note: str | None = None) -> Diagnostic:
    return Diagnostic("warning", Where("k.conf", line, (), note), f"{keyword or 'x'} ...",
                      keyword)


def test_condense_shows_the_first_repeats_then_counts_the_rest():
    items = [warning(n, "track_script") for n in range(1, 9)] + [warning(9, None)]
    lines = condense(items, shown=3)
    assert lines == [
        "k.conf:1: warning: track_script ...",
        "k.conf:2: warning: track_script ...",
        "k.conf:3: warning: track_script ...",
        "k.conf:4: warning: ... and 5 more track_script warnings like these "
        "(hivrrp check --json lists every one)",
        "k.conf:9: warning: x ...",
    ]
    assert condense(items[:3], shown=3) == [str(d) for d in items[:3]]


def test_condense_keeps_errors_and_unkeyed_warnings_and_each_key_apart():
    error = Diagnostic("error", Where("k.conf", 1), "bad")
    items = ([error] * 4 + [warning(2, None)] * 4
             + [warning(n, key) for n in (3, 4, 5) for key in ("notify", "track_file")])
    lines = condense(items, shown=2)
    assert lines[:8] == ["k.conf:1: error: bad"] * 4 + ["k.conf:2: warning: x ..."] * 4
    assert lines[8:] == [
        "k.conf:3: warning: notify ...", "k.conf:3: warning: track_file ...",
        "k.conf:4: warning: notify ...", "k.conf:4: warning: track_file ...",
        "k.conf:5: warning: ... and 1 more notify warning like these "
        "(hivrrp check --json lists every one)",
        "k.conf:5: warning: ... and 1 more track_file warning like these "
        "(hivrrp check --json lists every one)",
    ]


def test_the_summary_line_leaves_out_the_macro_context():
    items = [warning(7, "track_script", note=f"N={n}") for n in range(3)]
    assert condense(items, shown=1)[1].startswith("k.conf:7: warning: ... and 2 more ")
