"""The `hivrrp` command line."""

from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
# One daemon per network namespace: its pid file and socket are in
# /run/hivrrp/, or /run/hivrrp/netns/NAME/ inside `ip netns exec NAME`.
PER_NAMESPACE = "/run/hivrrp/[netns/NAME/]"


def default_socket() -> str:
    from hivrrp.ops import runpaths
    return runpaths.control_socket()


def default_pid_file() -> str:
    from hivrrp.ops import runpaths
    return runpaths.pid_file()


def print_version(ctx: click.Context) -> None:
    import hivrrp  # the version is read from the installed metadata only when asked

    click.echo(f"hivrrp, version {hivrrp.__version__}")
    ctx.exit()


def keepalived_refusals(command):
    """keepalived's flags that hivrrp does not honour (ops.keepalived_args.REFUSED):
    each stops the command with its reason rather than being ignored. Hidden:
    they are not hivrrp's options, only answers to keepalived habits."""
    from hivrrp.ops.keepalived_args import REFUSED

    def refuse(ctx: click.Context, param: click.Parameter, value) -> None:
        if value:
            raise click.UsageError(f"keepalived's {'/'.join(param.opts)} is not supported: "
                                   f"{param.help}", ctx)

    for refused in reversed(REFUSED):
        command = click.option(*refused.flags, "refused_" + refused.flags[1][2:].replace("-", "_"),
                               is_flag=not refused.takes_value, hidden=True,
                               expose_value=False, callback=refuse, help=refused.why,
                               metavar="VALUE")(command)
    return command


def harmless(*flags: str, name: str):
    """A keepalived flag hivrrp accepts because it already behaves that way."""
    from hivrrp.ops.keepalived_args import HARMLESS

    return click.option(*flags, name, is_flag=True, expose_value=False, help=HARMLESS[name])


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("-v", "--version", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _param, value: print_version(ctx) if value else None,
              help="Show the version and exit (as keepalived -v).")
@click.option("-t", "--config-test", is_flag=True,
              help="Check the configuration and exit, as keepalived -t: hivrrp check. "
                   "Exit 1 on any error (keepalived says 3, 4 or 5 by kind); no -tFILE.")
@click.option("-n", "--dont-fork", is_flag=True,
              help="Run the daemon, as keepalived -n: hivrrp run. hivrrp never forks: it "
                   "always runs in the foreground.")
@click.option("-f", "--use-file", "config_file", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="Configuration file, with -t or -n.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id lines (default: the short host name), with -t or -n.")
@click.option("-p", "--pid", "pid_file", default=None, metavar="FILE",
              help="With -n: the pid file (hivrrp run --pid-file).")
@click.option("-u", "--umask", default=None, metavar="MASK",
              help="With -n: the umask for the files hivrrp and its scripts create "
                   "(numeric: 022, 0x12, 18), as keepalived -u.")
@click.option("--signum", default=None, metavar="SIGFUNC",
              help="Print the number of the signal that asks the daemon to STOP, RELOAD, "
                   "or write its DATA or STATS file, and exit (as keepalived --signum).")
@harmless("-l", "--log-console", name="log_console")
@harmless("-D", "--log-detail", name="log_detail")
@harmless("-P", "--vrrp", name="vrrp_only")
@harmless("-B", "--no_bfd", name="no_bfd")
@harmless("-G", "--no-syslog", name="no_syslog")
@harmless("-R", "--dont-respawn", name="dont_respawn")
@harmless("-I", "--dont-release-ipvs", name="dont_release_ipvs")
@keepalived_refusals
@click.pass_context
def main(ctx: click.Context, config_test: bool, dont_fork: bool, config_file: str,
         config_id: str | None, pid_file: str | None, umask: str | None,
         signum: str | None) -> None:
    """hivrrp: VRRP for thousands of instances, configured with keepalived.conf.

    Without a command, hivrrp takes keepalived's flags: `hivrrp -t -f FILE`
    checks a file and `hivrrp -n -f FILE` runs the daemon in the foreground,
    so a keepalived unit or script works with the binary swapped.
    """
    given = [p.opts[-1] for p in ctx.command.params
             if ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)]
    if ctx.invoked_subcommand is not None:
        if given:
            raise click.UsageError(f"{', '.join(given)}: keepalived's flags, for hivrrp "
                                   f"without a command; give {ctx.invoked_subcommand} its own "
                                   f"options (hivrrp {ctx.invoked_subcommand} --help)", ctx)
        return
    if signum is not None:
        from hivrrp.ops.keepalived_args import signum as signal_number
        try:
            click.echo(signal_number(signum))
        except ValueError as exc:
            raise click.UsageError(f"--signum: {exc}", ctx)
    elif config_test:
        ctx.invoke(check, config_file=config_file, config_id=config_id)
    elif dont_fork:
        if umask is not None:
            from hivrrp.ops.keepalived_args import parse_umask
            try:
                os.umask(parse_umask(umask))
            except ValueError as exc:
                raise click.BadParameter(str(exc), ctx, param_hint="-u/--umask")
        options = {"pid_file": pid_file} if pid_file is not None else {}
        ctx.invoke(run, config_file=config_file, config_id=config_id, **options)
    elif given:
        # keepalived without -n forks and returns 0 at once, its daemon
        # running in the background; hivrrp never forks. Running in the
        # foreground instead would hang whatever waits for that return (an
        # init script, a Type=forking unit until its timeout, a script's next
        # line); printing the help and exiting 0, as hivrrp did, made them
        # believe a daemon had started. So: a refusal that says what works.
        # -n is keepalived's own word for the foreground, and Debian's
        # keepalived.service already passes it (`keepalived --dont-fork
        # $DAEMON_ARGS`), so a unit with only the binary swapped runs.
        raise click.UsageError(
            f"{', '.join(given)} without -n: keepalived would fork into the background, and "
            "hivrrp never forks. To run the daemon in the foreground (systemd, a "
            "supervisor): hivrrp -n -f FILE, or hivrrp run -f FILE; to check a file: "
            "hivrrp -t -f FILE.", ctx)
    else:
        click.echo(ctx.get_help())


@main.command()
@click.argument("file", required=False, metavar="[FILE]")
@click.option("-f", "--use-file", "config_file", default=None, metavar="FILE",
              help=f"The keepalived.conf to check (or FILE; default {DEFAULT_CONFIG}).")
@click.option("-t", "--config-test", is_flag=True, expose_value=False,
              help="Accepted, as in keepalived -t -f FILE: checking is what check does.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id/@^id lines (default: the short host name), as keepalived -i.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: instances (with their trackers), errors, warnings.")
def check(file: str | None, config_file: str | None, config_id: str | None,
          as_json: bool) -> None:
    """Check a keepalived.conf: every problem with its FILE:LINE, exit 1 on errors."""
    import json

    from hivrrp.config import load
    from hivrrp.config.diagnostics import condense
    from hivrrp.config.followers import groups_of
    from hivrrp.config.summary import summary, tracking_report

    if file is not None and config_file is not None and file != config_file:
        raise click.UsageError(f"two files to check: {file} and -f {config_file}")
    config_file = file or config_file or DEFAULT_CONFIG
    result = load(config_file, config_id=config_id, check_scripts=True)
    if as_json:
        # "tracking": the instance's trackers with its sync group's, and the
        # priorities they can produce (null when it tracks nothing).
        tracking = tracking_report(result.config)
        click.echo(json.dumps({
            "file": config_file,
            "instances": [{**i.as_dict(), "tracking": tracking.get(i.name)}
                          for i in result.config.instances],
            "leaders": groups_of(result.config),    # leader -> its followers (`follow`)
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
    sys.exit(0 if result.clean else 1)


@main.command()
@click.option("-f", "--use-file", "config_file", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="The keepalived.conf to run.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id/@^id lines (default: the short host name).")
@click.option("--pid-file", default=default_pid_file, show_default=PER_NAMESPACE + "hivrrp.pid",
              metavar="FILE", help="The daemon's PID, locked while it runs: a second daemon "
                                   "with the same pid file refuses to start.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="hivrrp's own lines from this level up; other libraries' from info up "
                   "(see --debug-libraries).")
@click.option("--debug-libraries", is_flag=True,
              help="Also the libraries' debug lines: pyroute2's every netlink message, "
                   "asyncio's internals (tens of KB for one instance's start).")
@click.option("--control", "control_path", default=default_socket,
              show_default=PER_NAMESPACE + "control.sock",
              metavar="PATH", help="The control socket (hivrrp status); 'none': no socket.")
@click.option("--metrics", "metrics_address", default=None, metavar="ADDR:PORT",
              help="Serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR alone: port "
                   "9736). Off unless given.")
@click.option("--metrics-compat", type=click.Choice(["keepalived-exporter"]), default=None,
              help="With --metrics, also serve mehdy/keepalived-exporter's families "
                   "(keepalived_vrrp_state, keepalived_*_total), so dashboards and alerts "
                   "made for keepalived keep working. See docs/metrics.md.")
@click.option("--send-path", type=click.Choice(["auto", "raw"]), default="auto",
              show_default=True,
              help="How adverts go out. auto: multicast IPv4 adverts on Ethernet links as "
                   "whole frames on a packet socket (half the kernel's time per advert; "
                   "netfilter's OUTPUT no longer sees them), the rest (unicast peers, IPv6, "
                   "other links) through the raw IP socket, each fallback logged once. raw: "
                   "every advert through the raw IP socket.")
def run(config_file: str, config_id: str | None, pid_file: str, log_level: str,
        debug_libraries: bool, control_path: str, metrics_address: str | None,
        metrics_compat: str | None, send_path: str) -> None:
    """Run VRRP in the foreground (systemd Type=notify); logs go to stderr.

    Starts only if the configuration is valid and no other hivrrp runs with
    the same pid file (one per network namespace by default). SIGTERM/SIGINT
    release every master with priority 0, remove the VIPs and exit 0.
    Exit status: 1 invalid configuration or already running, 2 not root.
    """
    import logging

    metrics = None
    if metrics_compat is not None and metrics_address is None:
        raise click.UsageError("--metrics-compat needs --metrics ADDR:PORT")
    if metrics_address is not None:
        from hivrrp.ops.metrics import parse_address
        try:
            metrics = (*parse_address(metrics_address), metrics_compat)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics")
    from hivrrp.ops import logsetup

    logsetup.configure(log_level, debug_libraries)
    log = logging.getLogger("hivrrp")
    # Before anything else: a second daemon must change nothing, not even
    # remove the "leftover" VIPs that are the running one's.
    lock = _daemon_locks(pid_file, log, ": not starting a second one")
    try:
        _run_locked(config_file, config_id, control_path, metrics, log, send_path)
    finally:
        lock.release()


def _daemon_locks(pid_file: str, log, running_means: str = ""):
    """This namespace's daemon locks, or exit: 1 when a daemon holds them, 2 when
    not root (and 1 for a pid file that is not ours to take)."""
    from hivrrp.ops import runpaths
    from hivrrp.ops.pidfile import AlreadyRunning, DaemonLocks, PidFileError

    try:
        return DaemonLocks(pid_file, runpaths.namespace_lock()).acquire()
    except AlreadyRunning as exc:
        log.error("%s%s", exc, running_means)
        sys.exit(1)
    except PidFileError as exc:
        log.error("%s", exc)
        sys.exit(2 if os.geteuid() != 0 else 1)


def _run_locked(config_file: str, config_id: str | None, control_path: str,
                metrics: tuple[str, int, str | None] | None, log,
                send_path: str = "auto") -> None:
    from hivrrp.config.diagnostics import log_problems
    from hivrrp.config.isolated import load_isolated
    from hivrrp.util.text import plural

    result = load_isolated(config_file, config_id=config_id)
    log_problems(result, log)
    if not result.ok:
        log.error("%s: %s, not starting", config_file,
                  plural(len(result.fatal), "configuration error"))
        sys.exit(1)
    from hivrrp.daemon import wiring as daemon

    try:
        code = daemon.run(result.config, config_file, config_id,
                          None if control_path == "none" else control_path, metrics, send_path)
    except PermissionError as exc:
        log.error("hivrrp run needs root (raw sockets, netlink): %s", exc)
        sys.exit(2)
    sys.exit(code)


# run's other options are accepted (hidden) and do nothing, so the unit's
# ExecStopPost= passes the same $HIVRRP_OPTS as its ExecStart=, and -f, -i and
# --pid-file there (which VIPs, which daemon) count. Taken from run itself, so
# an option run gains is one release takes; named rather than any unknown
# option ignored: a typo (--use-fille) must still fail.
def _runs_options_ignored(command):
    for param in run.params:
        if param.name not in ("config_file", "config_id", "pid_file"):
            command = click.option(*param.opts, f"ignored_{param.name}", hidden=True,
                                   is_flag=param.is_flag, expose_value=False)(command)
    return command


@main.command()
@click.option("-f", "--use-file", "config_file", default=DEFAULT_CONFIG, show_default=True,
              metavar="FILE", help="The keepalived.conf whose VIPs to remove.")
@click.option("-i", "--config-id", default=None,
              help="Config id for @id/@^id lines (default: the short host name).")
@click.option("--pid-file", default=default_pid_file, show_default=PER_NAMESPACE + "hivrrp.pid",
              metavar="FILE", help="The pid file a running daemon holds (then nothing is "
                                   "removed).")
@_runs_options_ignored
def release(config_file: str, config_id: str | None, pid_file: str) -> None:
    """Remove the VIPs a dead daemon left on the interfaces.

    A SIGKILLed, crashed or watchdog-killed daemon leaves its VIPs in place,
    answering and announced by routing daemons, until the next `hivrrp run`
    removes them. This is that step alone, for systemd's ExecStopPost= (the
    shipped unit runs it after every stop, with run's options: those other
    than -f, -i and --pid-file are ignored). Refuses while a daemon runs here.
    Exit status: 0 (also when nothing was left), 1 a daemon runs, the
    configuration is invalid or a VIP or VMAC could not be removed, 2 not root (or
    without CAP_NET_ADMIN).
    """
    import asyncio
    import errno
    import logging

    from hivrrp.config.diagnostics import condense
    from hivrrp.config.isolated import load_isolated
    from hivrrp.ops import logsetup
    from hivrrp.ops.release import release as release_vips
    from hivrrp.util.text import plural

    logsetup.configure("info", False)
    log = logging.getLogger("hivrrp")
    lock = _daemon_locks(pid_file, log, ": its VIPs are not leftovers, nothing removed")
    try:
        result = load_isolated(config_file, config_id=config_id)
        if not result.ok:
            for line in condense(result.fatal):
                log.error("%s", line)
            log.error("%s: %s, nothing removed", config_file,
                      plural(len(result.fatal), "configuration error"))
            sys.exit(1)
        try:
            found, failures, table_error, vmac_failures = asyncio.run(
                release_vips(result.config))
        except PermissionError as exc:
            log.error("hivrrp release needs root (netlink): %s", exc)
            sys.exit(2)
        # Refused for want of CAP_NET_ADMIN is "not allowed" (2), as for run.
        refused = os.strerror(errno.EPERM)
        status = 0
        if vmac_failures:
            log.error("release: %s not deleted", plural(len(vmac_failures), "VMAC"))
            status = max(status, 2 if any(refused in f for f in vmac_failures) else 1)
        if failures:
            log.error("release: %d of %s not removed", len(failures), plural(found, "VIP"))
            status = max(status, 2 if any(f.startswith(refused) for f in failures) else 1)
        if table_error:
            log.error("release: the nftables table was not removed")
            status = max(status, 2 if refused in table_error else 1)
        if status:
            sys.exit(status)
        log.info("release: %s", f"removed {plural(found, 'VIP')} left over"
                 if found else "no VIP left over")
    finally:
        lock.release()


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
    from hivrrp.tools.lab import run_lab

    sys.exit(run_lab(instances, peer, keep_logs))


@main.command()
@click.argument("capture")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per packet.")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="Also judge each advert as the daemon would with this keepalived.conf: "
                   "ok, or the reason it drops it (the names of its drop counters).")
@click.option("-i", "--config-id", default=None,
              help="With --config: config id for @id lines (default: the short host name).")
@click.option("--interface", default=None, metavar="IF",
              help="With --config: judge every advert as received on IF (default: the "
                   "interface the pcapng file names, else any with the advert's VRID).")
def decode(capture: str, as_json: bool, config_file: str | None, config_id: str | None,
           interface: str | None) -> None:
    """Decode and check the VRRP adverts in a pcap/pcapng CAPTURE.

    Prints one line per VRRP packet with its verdict: `ok` or why a VRRP
    router would drop it. With --config, the verdict is this router's, from
    the daemon's own engine: the advert's instance and `ok`, or the reason it
    is dropped (unknown_vrid, auth_failure, address_list, interval_mismatch,
    version_mismatch...) and the line the daemon's log would say. Other
    traffic in the capture is skipped.
    """
    from hivrrp._wire import decode_ipv4, decode_ipv6
    from hivrrp.tools.decode import report as decode_report
    from hivrrp.tools.decode.capture import CaptureError, read_vrrp

    if config_file is None and (config_id is not None or interface is not None):
        raise click.UsageError("-i/--config-id and --interface need --config FILE")
    judge = _judge(config_file, config_id) if config_file is not None else None
    render = decode_report.as_json if as_json else decode_report.as_text
    guessed = False
    try:
        for datagram in read_vrrp(capture):
            if datagram.family == 4:
                advert = decode_ipv4(datagram.data)
            else:
                advert = decode_ipv6(datagram.data, datagram.src, datagram.dst, datagram.hoplimit)
            verdict = judge.judge(datagram, advert, interface) if judge else None
            if verdict is not None and verdict.by_vrid and not guessed:
                guessed = True
                click.echo(f"hivrrp decode: {capture} does not say which interface its adverts "
                           "came in on (a pcap file, -i any, or no interface name): each is judged "
                           "on the configured interfaces with its VRID and family; --interface IF "
                           "judges them as received on IF", err=True)
            click.echo(render(advert, datagram.time, verdict))
    except CaptureError as exc:
        click.echo(f"hivrrp decode: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # `hivrrp decode x.pcap | head` is normal use, not an error.
        sys.stderr.close()
        sys.exit(0)


def _judge(config_file: str, config_id: str | None):
    """The engine the daemon would build from config_file, or exit 1 with why
    not (as hivrrp run would not start on that file)."""
    from hivrrp.config import load
    from hivrrp.config.diagnostics import condense
    from hivrrp.tools.decode.judge import Judge
    from hivrrp.util.text import plural

    # check_host=False: the capture may come from another host than this one.
    result = load(config_file, config_id=config_id, check_host=False)
    if not result.ok:
        for line in condense(result.fatal):
            click.echo(line, err=True)
        raise click.ClickException(f"{config_file}: {plural(len(result.fatal), 'error')}; "
                                   "the daemon would not run it, so nothing is judged")
    return Judge(result.config)


# ------------------------------------------------------------ control socket

socket_option = click.option("--socket", "socket_path", default=default_socket,
                             show_default=PER_NAMESPACE + "control.sock", metavar="PATH",
                             help="The running daemon's control socket (by default the one "
                                  "of this network namespace's daemon).")


def exchange(socket_path: str, command: dict, timeout: float = 10.0) -> dict:
    """One request to the running daemon and its reply, whatever it says; a
    clear message and exit 1 when there is no reply."""
    from hivrrp.ops.control import request

    try:
        reply = request(socket_path, command, timeout)
    except FileNotFoundError:
        raise click.ClickException(f"no control socket at {socket_path}: is hivrrp running?")
    except PermissionError:
        raise click.ClickException(f"{socket_path}: permission denied (root only)")
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{socket_path}: {exc}")
    if not isinstance(reply, dict):
        raise click.ClickException(f"{socket_path}: not an answer: {reply!r:.200}")
    return reply


def ask(socket_path: str, command: dict, timeout: float = 10.0, whole: bool = False):
    """exchange(), and exit 1 with the daemon's error when it refused.
    The result, or with `whole` the reply itself."""
    reply = exchange(socket_path, command, timeout)
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error", "the daemon refused the request"))
    return reply if whole else reply["result"]


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

    from hivrrp.util.text import plural

    reply = ask(socket_path, {"command": "status"}, whole=True)
    rows = reply["result"]
    wanted = {s.upper() for s in states}
    rows = [r for r in rows if (not wanted or r["state"] in wanted)
            and (not interfaces or r["interface"] in interfaces)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    now = time.time()
    click.echo(daemon_line(reply.get("daemon") or {}, socket_path, now))
    _other_namespace_warning(reply.get("daemon") or {}, socket_path)
    firewall = (reply.get("daemon") or {}).get("firewall") or {}
    if firewall.get("problem"):
        click.echo(f"hivrrp status: no_accept is NOT enforced: {firewall['problem']}", err=True)
    header = ("INSTANCE", "INTERFACE", "VRID", "STATE", "PRIO", "MASTER", "VIPS", "SINCE")
    lines = [header]
    for r in rows:
        since = "-" if r["last_transition"] is None else _ago(now - r["last_transition"])
        vips = ",".join(r["vips"][:3]) + (f",+{len(r['vips']) - 3}" if len(r["vips"]) > 3 else "")
        state = r["state"] + (f" (follows {r['leader']})" if r.get("leader") else "")
        lines.append((r["instance"], r["interface"] or "-", str(r["vrid"]), state,
                      f"{r['base_priority']}/{r['priority']}", r["master"] or "-", vips or "-",
                      since))
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    for line in lines:
        click.echo("  ".join(f"{v:<{w}}" for v, w in zip(line, widths)).rstrip())
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    click.echo(f"{plural(len(rows), 'instance')}: "
               + ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n))


def _other_namespace_warning(daemon: dict, socket_path: str) -> None:
    """Said when the daemon that answered is not this shell's namespace's: where
    a namespace's name cannot be found, two share the default paths."""
    from hivrrp.ops.control import netns_id

    theirs, ours = daemon.get("netns_id"), netns_id()
    if theirs and ours and theirs != ours:
        click.echo(f"hivrrp status: the daemon at {socket_path} runs in another network "
                   f"namespace than this command (its {theirs}, ours {ours}): "
                   "ask the right one with --socket", err=True)


def daemon_line(daemon: dict, socket_path: str, now: float) -> str:
    """Which daemon answered: with one per network namespace, the wrong one is easy to ask."""
    parts = [f"hivrrp {daemon.get('version', '?')}", f"pid {daemon.get('pid', '?')}",
             f"config {daemon.get('config_file') or '?'}"]
    if daemon.get("started"):
        parts.append(f"up {_ago(now - daemon['started']).removesuffix(' ago')}")
    parts.append(f"namespace {daemon.get('namespace') or '(host)'}")
    parts.append(f"socket {socket_path}")
    if daemon.get("send_path"):
        parts.append(f"send path {daemon['send_path']['summary']}")
    return ", ".join(parts)


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
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds to wait for the outcome.")
@click.option("--no-wait", is_flag=True, help="Only ask (as SIGHUP); do not wait for the outcome.")
def reload(socket_path: str, timeout: float, no_wait: bool) -> None:
    """Reload the running daemon's configuration and say what happened.

    Exit status 0 when the new configuration runs; 1 when it was rejected
    (its errors are printed; the running configuration stays), failed, was
    abandoned, or no outcome came within --timeout.
    """
    if no_wait:
        click.echo(ask(socket_path, {"command": "reload"}))
        return
    # The reply itself: a rejected file's errors come with the refusal.
    reply = exchange(socket_path, {"command": "reload", "wait": timeout}, timeout + 5)
    outcome = reply.get("result")
    if isinstance(outcome, dict):
        for error in outcome.get("errors") or ():
            click.echo(error, err=True)
    if reply.get("ok") and isinstance(outcome, dict):
        click.echo(outcome.get("detail") or "reloaded")
        return
    raise click.ClickException(reply.get("error", "the reload was not applied"))


@main.command()
@socket_option
def dump(socket_path: str) -> None:
    """The running daemon's full state as JSON (counters, FAULT reasons, trackers)."""
    import json

    click.echo(json.dumps(ask(socket_path, {"command": "dump"}), indent=1, default=str))
