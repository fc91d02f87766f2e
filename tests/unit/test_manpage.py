"""hivrrp(8): built from the click tree with the package, installed with it,
listing every command and option, and rendering without a groff warning."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from hivrrp.cli import main as cli
from hivrrp.tools.manpage import render

# Where the wheel's data files land: prefix/share/man/man8, next to bin/hivrrp.
INSTALLED = Path(sys.prefix) / "share" / "man" / "man8" / "hivrrp.8"


def groff_warnings(page: Path) -> str:
    if shutil.which("groff") is None:
        pytest.fail("groff is missing: tests/run.sh installs man-db (and groff-base)")
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                            capture_output=True, text=True, timeout=60)
    return result.stderr


def as_text(page: Path) -> str:
    """The page as `man` shows it, wide enough that no option line wraps, and
    with groff's typographic dashes (U+2010, U+2212) back to '-'."""
    if shutil.which("man") is None:
        pytest.fail("man is missing: tests/run.sh installs man-db")
    result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "MANWIDTH": "400",
                                             "LC_ALL": "C.UTF-8", "MANPAGER": "cat"})
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\u2010", "-").replace("\u2212", "-")


def commands(group: click.Group, ctx: click.Context, path: str):
    """(usage path, command, context) for every command of the tree, depth first."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        yield f"{path} {name}", command, sub
        if isinstance(command, click.Group):
            yield from commands(command, sub, f"{path} {name}")


def sections(text: str, headings: list[str]) -> dict[str, str]:
    """The rendered page cut at each command's heading line."""
    lines = text.splitlines()
    starts = {}
    for heading in headings:
        found = [i for i, line in enumerate(lines) if line.strip().startswith(heading + " ")
                 or line.strip() == heading]
        assert found, f"no section for {heading!r} in the page"
        starts[heading] = found[0]
    order = sorted(starts.values()) + [len(lines)]
    return {h: "\n".join(lines[i:order[order.index(i) + 1]]) for h, i in starts.items()}


def test_the_page_is_installed_with_the_program():
    assert INSTALLED.is_file(), f"{INSTALLED}: the build wrote no man page"
    assert INSTALLED.read_text().startswith(".TH HIVRRP 8 ")


def test_the_page_lists_every_command_and_option_of_the_cli():
    """Against the installed CLI's own tree: an option added without reaching
    the page (a hand-kept page, a generator that skips a kind) fails here."""
    text = as_text(INSTALLED)
    root = click.Context(cli, info_name="hivrrp", **cli.context_settings)
    tree = list(commands(cli, root, "hivrrp"))
    assert len(tree) >= 8
    cut = sections(text, [path for path, _, _ in tree])
    top = text.split("\nCOMMANDS\n")[0]
    for param in cli.get_params(root):
        # Hidden: keepalived's flags that hivrrp refuses (cli.keepalived_refusals),
        # not options of its own.
        if getattr(param, "hidden", False):
            continue
        for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []):
            if isinstance(param, click.Option):
                assert opt in top, f"hivrrp {opt} is not in OPTIONS"
    for path, command, ctx in tree:
        section = cut[path]
        assert (command.help or "").split("\n")[0].strip()[:40] in " ".join(section.split())
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Argument):
                assert param.human_readable_name in section.splitlines()[0], (path, param.name)
                continue
            for opt in param.opts + param.secondary_opts:
                assert any(line.strip().startswith(opt) or f", {opt}" in line
                           for line in section.splitlines()), f"{path} {opt} is not in the page"


def test_the_installed_page_renders_without_warnings():
    assert groff_warnings(INSTALLED) == ""
    if shutil.which("man") is not None:
        result = subprocess.run(["man", "--warnings", "-l", str(INSTALLED)],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "MANPAGER": "cat"})
        assert result.returncode == 0 and result.stderr == "", result.stderr


def test_roff_in_help_text_is_shown_literally(tmp_path):
    """Help text is the developers' prose: a line starting with '.' or a
    quote, a backslash, a \\b block must come out as written, not as roff."""

    @click.group(help="tool: does things.\n\n.not a request\n\n'nor this")
    def tool():
        pass

    @tool.group()
    def sub():
        """A nested group."""

    @sub.command()
    @click.argument("target")
    @click.option("--path", default="C:\\temp", show_default=True, help="A \\fBbackslash.")
    @click.option("--secret", hidden=True)
    def leaf(target, path, secret):
        """Leaf command.

        \b
        keep
          these lines
        """

    page = tmp_path / "tool.8"
    page.write_text(render(tool, name="tool", version="1.0"))
    assert groff_warnings(page) == ""
    text = as_text(page)
    assert ".not a request" in text and "'nor this" in text
    assert "A \\fBbackslash." in text and "C:\\temp" in text
    assert "tool sub leaf [OPTIONS] TARGET" in text
    assert "keep\n" in text and "  these lines" in text
    assert "--secret" not in text
