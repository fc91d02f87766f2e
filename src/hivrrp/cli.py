"""The `hivrrp` command line."""

from __future__ import annotations

import sys

import click


DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
DEFAULT_SOCKET = "/run/hivrrp/control.sock"    # as hivrrp.control.DEFAULT_SOCKET


def print_version(ctx: click.Context) -> None:
    import hivrrp   # the version is read from the installed metadata only when asked

    click.echo(f"hivrrp, version {hivrrp.__version__}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("-V", "--version", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _param, value: print_version(ctx) if value else None,
              help="Show the version and exit.")
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

    result = load(config_file, config_id=config_id, check_scripts=True)
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
            "info": [d.as_dict() for d in result.infos],
        }, indent=None))
    else:
        order = {"error": 0, "warning": 1, "info": 2}
        for line in condense(sorted(result.errors + result.warnings + result.infos,
                                    key=lambda d: (order[d.severity], d.where.file,
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
@click.option("--control", "control_path", default=DEFAULT_SOCKET, show_default=True,
              metavar="PATH", help="The control socket (hivrrp status); 'none': no socket.")
@click.option("--metrics", "metrics_address", default=None, metavar="ADDR:PORT",
              help="Serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR alone: port "
                   "9736). Off unless given.")
def run(config_file: str, config_id: str | None, pid_file: str | None, log_level: str,
        control_path: str, metrics_address: str | None) -> None:
    """Run VRRP in the foreground (systemd Type=notify); logs go to stderr.

    Starts only if the configuration is valid. SIGTERM/SIGINT release every
    master with priority 0, remove the VIPs and exit 0.
    """
    import logging

    from hivrrp.config import load
    from hivrrp.config.diagnostics import condense

    metrics = None
    if metrics_address is not None:
        from hivrrp.metrics import parse_address
        try:
            metrics = parse_address(metrics_address)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics")
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("hivrrp")
    from hivrrp.config.isolated import load_isolated
    result = load_isolated(config_file, config_id=config_id)
    for line in condense(result.warnings):
        log.warning("%s", line)
    for diagnostic in result.infos:
        log.info("%s", diagnostic)
    for diagnostic in result.errors:
        log.error("%s", diagnostic)
    if not result.ok:
        log.error("%s: %d configuration errors, not starting", config_file, len(result.errors))
        sys.exit(1)
    from hivrrp import daemon

    try:
        code = daemon.run(result.config, config_file, config_id, pid_file,
                          None if control_path == "none" else control_path, metrics)
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


# ------------------------------------------------------------ control socket

socket_option = click.option("--socket", "socket_path", default=DEFAULT_SOCKET, show_default=True,
                             metavar="PATH", help="The running daemon's control socket.")


def ask(socket_path: str, command: dict):
    """One request to the running daemon; a clear message and exit 1 on failure."""
    from hivrrp.control import request

    try:
        reply = request(socket_path, command)
    except FileNotFoundError:
        raise click.ClickException(f"no control socket at {socket_path}: is hivrrp running?")
    except PermissionError:
        raise click.ClickException(f"{socket_path}: permission denied (root only)")
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{socket_path}: {exc}")
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error", "the daemon refused the request"))
    return reply["result"]


STATES = ("INIT", "BACKUP", "MASTER", "FAULT")


@main.command()
@socket_option
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Only instances in this state (repeatable).")
@click.option("--interface", "interfaces", multiple=True, metavar="IF",
              help="Only instances on this interface (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of instances.")
def status(socket_path: str, states: tuple, interfaces: tuple, as_json: bool) -> None:
    """The running daemon's instances: state, priorities, master, VIPs."""
    import json
    import time

    rows = ask(socket_path, {"command": "status"})
    wanted = {s.upper() for s in states}
    rows = [r for r in rows if (not wanted or r["state"] in wanted)
            and (not interfaces or r["interface"] in interfaces)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    header = ("INSTANCE", "INTERFACE", "VRID", "STATE", "PRIO", "MASTER", "VIPS", "SINCE")
    lines = [header]
    now = time.time()
    for r in rows:
        since = "-" if r["last_transition"] is None else _ago(now - r["last_transition"])
        vips = ",".join(r["vips"][:3]) + (f",+{len(r['vips']) - 3}" if len(r["vips"]) > 3 else "")
        lines.append((r["instance"], r["interface"] or "-", str(r["vrid"]), r["state"],
                      f"{r['base_priority']}/{r['priority']}", r["master"] or "-", vips or "-",
                      since))
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    for line in lines:
        click.echo("  ".join(f"{v:<{w}}" for v, w in zip(line, widths)).rstrip())
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    click.echo(f"{len(rows)} instances: " + ", ".join(f"{n} {s.lower()}"
                                                      for s, n in counts.items() if n))


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@main.command("set-priority")
@socket_option
@click.argument("instance")
@click.argument("priority", type=click.IntRange(1, 255))
def set_priority(socket_path: str, instance: str, priority: int) -> None:
    """Change an instance's base priority at runtime (preemption follows).

    Runtime only: the configured priority comes back at the next reload or restart.
    """
    result = ask(socket_path, {"command": "set-priority", "instance": instance,
                               "priority": priority})
    click.echo(f"{instance}: base priority {result['was']} -> {result['base_priority']} "
               f"(effective {result['priority']}); {result['note']}")


@main.command()
@socket_option
def reload(socket_path: str) -> None:
    """Ask the running daemon to reload its configuration (as SIGHUP)."""
    click.echo(ask(socket_path, {"command": "reload"}))


@main.command()
@socket_option
def dump(socket_path: str) -> None:
    """The running daemon's full state as JSON (counters, FAULT reasons, trackers)."""
    import json

    click.echo(json.dumps(ask(socket_path, {"command": "dump"}), indent=1, default=str))
