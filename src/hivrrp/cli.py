"""The `hivrrp` command line."""

from __future__ import annotations

import sys

import click

from hivrrp import __version__


DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="hivrrp")
@click.option("-t", "--config-test", is_flag=True,
              help="Check the configuration and exit (as keepalived -t).")
@click.option("-f", "--use-file", "config_file", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="Configuration file (with -t).")
@click.option("-i", "--config-id", default=None, help="Config id for @id lines (with -t).")
@click.pass_context
def main(ctx: click.Context, config_test: bool, config_file: str, config_id: str | None) -> None:
    """hivrrp: VRRP for thousands of instances, configured with keepalived.conf."""
    if ctx.invoked_subcommand is None:
        if config_test:
            ctx.invoke(check, config_file=config_file, config_id=config_id, as_json=False)
        else:
            click.echo(ctx.get_help())


@main.command()
@click.option("-f", "-t", "--use-file", "config_file", default=DEFAULT_CONFIG,
              show_default=True, metavar="FILE", help="The keepalived.conf to check.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id/@^id lines (default: the short host name), as keepalived -i.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: instances (with their trackers), errors, warnings.")
def check(config_file: str, config_id: str | None, as_json: bool) -> None:
    """Check a keepalived.conf: every problem with its FILE:LINE, exit 1 on errors."""
    import json

    from hivrrp.config import load
    from hivrrp.config.diagnostics import condense
    from hivrrp.config.summary import summary, tracking_report

    result = load(config_file, config_id=config_id)
    if as_json:
        # "tracking": the instance's trackers with its sync group's, and the
        # priorities they can produce (null when it tracks nothing).
        tracking = tracking_report(result.config)
        click.echo(json.dumps({
            "file": config_file,
            "instances": [{**i.as_dict(), "tracking": tracking.get(i.name)}
                          for i in result.config.instances],
            "errors": [d.as_dict() for d in result.errors],
            "warnings": [d.as_dict() for d in result.warnings],
        }, indent=None))
    else:
        for line in condense(sorted(result.errors + result.warnings,
                                    key=lambda d: (d.severity != "error", d.where.file,
                                                   d.where.line))):
            click.echo(line, err=True)
        click.echo(summary(config_file, result))
    sys.exit(0 if result.ok else 1)


@main.command()
@click.option("-f", "--use-file", "config_file", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="The keepalived.conf to run.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id/@^id lines (default: the short host name).")
@click.option("--pid-file", default=None, metavar="FILE", help="Write the daemon's PID here.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def run(config_file: str, config_id: str | None, pid_file: str | None, log_level: str) -> None:
    """Run VRRP in the foreground (systemd Type=simple); logs go to stderr.

    Starts only if the configuration is valid. SIGTERM/SIGINT release every
    master with priority 0, remove the VIPs and exit 0.
    """
    import logging

    from hivrrp.config import load
    from hivrrp.config.diagnostics import condense

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("hivrrp")
    result = load(config_file, config_id=config_id)
    for line in condense(result.warnings):
        log.warning("%s", line)
    for diagnostic in result.errors:
        log.error("%s", diagnostic)
    if not result.ok:
        log.error("%s: %d configuration errors, not starting", config_file, len(result.errors))
        sys.exit(1)
    from hivrrp import daemon

    try:
        code = daemon.run(result.config, config_file, config_id, pid_file)
    except PermissionError as exc:
        log.error("hivrrp run needs root (raw sockets, netlink): %s", exc)
        sys.exit(2)
    sys.exit(code)


@main.command()
@click.option("--instances", "-n", default=300, show_default=True,
              type=click.IntRange(1, 4000), help="VRRP instances (250 per segment).")
@click.option("--peer", type=click.Choice(["hivrrp", "keepalived"]), default="hivrrp",
              show_default=True, help="What runs on the backup router.")
@click.option("--keep-logs", is_flag=True, help="Keep the daemons' logs and configs.")
def lab(instances: int, peer: str, keep_logs: bool) -> None:
    """Build a VRRP lab in network namespaces, elect, fail over, report, clean up.

    Needs root; touches nothing outside the namespaces it creates.
    """
    import os
    import shutil

    if os.geteuid() != 0:
        click.echo("hivrrp lab: needs root (network namespaces)", err=True)
        sys.exit(2)
    if shutil.which("ip") is None:
        click.echo("hivrrp lab: needs iproute2 (the 'ip' command)", err=True)
        sys.exit(2)
    if peer == "keepalived" and shutil.which("keepalived") is None:
        click.echo("hivrrp lab: --peer keepalived needs keepalived installed", err=True)
        sys.exit(2)
    from hivrrp.lab import run_lab

    sys.exit(run_lab(instances, peer, keep_logs))


@main.command()
@click.argument("capture")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per packet.")
def decode(capture: str, as_json: bool) -> None:
    """Decode and check the VRRP adverts in a pcap/pcapng CAPTURE.

    Prints one line per VRRP packet with its verdict: `ok` or why a VRRP
    router would drop it. Other traffic in the capture is skipped.
    """
    from hivrrp import decode_report
    from hivrrp._wire import decode_ipv4, decode_ipv6
    from hivrrp.capture import CaptureError, read_vrrp

    render = decode_report.as_json if as_json else decode_report.as_text
    try:
        for datagram in read_vrrp(capture):
            if datagram.family == 4:
                advert = decode_ipv4(datagram.data)
            else:
                advert = decode_ipv6(datagram.data, datagram.src, datagram.dst, datagram.hoplimit)
            click.echo(render(advert, datagram.time))
    except CaptureError as exc:
        click.echo(f"hivrrp decode: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # `hivrrp decode x.pcap | head` is normal use, not an error.
        sys.stderr.close()
        sys.exit(0)
