"""hivrrp(8), written from the click command tree.

setup.py calls render() while the package is built, so the installed page
lists exactly the commands and options of the program it came with; nobody
edits roff by hand. `python -m hivrrp.tools.manpage` prints the page of the
installed CLI.

Why not click-man: it writes one page per subcommand (hivrrp-run(1), ...)
in section 1, and it reads the CLI from an installed entry point (its
setuptools hook went with distutils in 0.5.0), so it cannot run inside the
build. A daemon's administrator expects one page in section 8 with every
command, as keepalived(8) and ip(8); walking the tree is a page of code.
"""

from __future__ import annotations

import os
import time

import click

# What the command tree cannot say: where things are and what the signals do.
# The paths are keepalived's (dump files) and hivrrp's runpaths defaults.
FILES = (
    ("/etc/keepalived/keepalived.conf",
     "The configuration, in keepalived.conf(5) syntax (-f/--use-file picks another)."),
    ("/etc/default/hivrrp",
     "HIVRRP_OPTS: options the systemd unit adds to `hivrrp run` (e.g. --metrics)."),
    ("/run/hivrrp/hivrrp.pid",
     "The daemon's pid, locked while it runs; /run/hivrrp/netns/NAME/hivrrp.pid for "
     "the daemon of network namespace NAME (`ip netns exec NAME hivrrp run`)."),
    ("/run/hivrrp/control.sock",
     "The control socket of status, set-priority, reload and dump (root only); "
     "per namespace as the pid file."),
    ("/tmp/keepalived.data",
     "Written on SIGUSR1, in keepalived's format ($TMPDIR instead of /tmp when set; "
     "state_file_location in the configuration overrides it)."),
    ("/tmp/keepalived.stats",
     "Written on SIGUSR2, in keepalived's format (stats_file_location overrides it)."),
)

SIGNALS = (
    ("SIGHUP", "Reload the configuration; unchanged instances keep their state, an "
               "invalid file is refused and the running configuration stays."),
    ("SIGTERM, SIGINT", "Release every master (priority 0), remove the VIPs, run the "
                        "notify_stop scripts and exit 0."),
    ("SIGUSR1", "Write the data file (see FILES)."),
    ("SIGUSR2", "Write the stats file (see FILES)."),
)

SEE_ALSO = ("keepalived.conf(5)", "keepalived(8)", "systemd.service(5)")


def escape(text: str) -> str:
    """Text as roff reads it literally: backslashes, dashes (as minus signs,
    so options copied from the page work), and no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def paragraphs(help_text: str) -> list[str]:
    """click's help as roff paragraphs. A paragraph click shows as written
    (a "\\b" line first) keeps its line breaks; the others are filled."""
    out = []
    for block in help_text.strip().split("\n\n"):
        lines = block.split("\n")
        if lines[0].strip() == "\b":
            out.append(".nf\n" + escape("\n".join(lines[1:])) + "\n.fi")
        else:
            out.append(escape(" ".join(line.strip() for line in lines)))
    return out


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)     # as --help shows it: metavar, default
        if record is None:                      # a hidden option (or, in older click, an argument)
            continue
        names, help_text = record
        if isinstance(param, click.Argument) and not help_text:
            continue                            # named in the usage line already
        lines += [".TP", "\\fB" + escape(names) + "\\fR", escape(help_text) or "\\&"]
    return lines


def _commands(group: click.Group, ctx: click.Context, path: str) -> list[str]:
    lines = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        usage = " ".join([path, name, *command.collect_usage_pieces(sub)])
        lines += [".SS " + escape(usage)]
        lines += "\n.PP\n".join(paragraphs(command.help or command.short_help or "")).split("\n")
        lines += _options(command, sub)
        if isinstance(command, click.Group):
            lines += _commands(command, sub, f"{path} {name}")
    return lines


def _table(rows) -> list[str]:
    lines = []
    for name, text in rows:
        lines += [".TP", "\\fB" + escape(name) + "\\fR", escape(text)]
    return lines


def render(cli: click.Group, name: str = "hivrrp", version: str = "") -> str:
    """The whole page, roff for man(7)."""
    # The group's context_settings (-h as well as --help) reach every subcommand.
    ctx = click.Context(cli, info_name=name, **cli.context_settings)
    summary = (cli.help or "").strip().split("\n")[0].rstrip(".")
    summary = summary.split(": ", 1)[1] if summary.startswith(f"{name}: ") else summary
    # SOURCE_DATE_EPOCH: the same bytes from the same sources (reproducible builds).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch))) if epoch else ""
    lines = [
        f'.TH {name.upper()} 8 "{date}" "{escape(name)} {escape(version)}" '
        '"System Administration"',
        # No hyphenation, ragged right: an option broken as "--de-bug" is not copyable.
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        *(f".B {escape(name)}\n" + escape(" ".join(cli.collect_usage_pieces(ctx)))).split("\n"),
        ".SH DESCRIPTION",
        *"\n.PP\n".join(paragraphs(cli.help or "")).split("\n"),
        ".SH OPTIONS",
        *_options(cli, ctx),
        ".SH COMMANDS",
        *_commands(cli, ctx, name),
        ".SH SIGNALS",
        *_table(SIGNALS),
        ".SH FILES",
        *_table(FILES),
        ".SH SEE ALSO",
        ",\n".join(f"\\fB{escape(page.split('(')[0])}\\fR({page.split('(')[1]}"
                   for page in SEE_ALSO),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import hivrrp
    from hivrrp.cli import main as cli

    print(render(cli, version=hivrrp.__version__), end="")


if __name__ == "__main__":
    main()
