"""The `hivrrp` command line."""

from __future__ import annotations

import sys

import click

from hivrrp import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="hivrrp")
def main() -> None:
    """hivrrp: VRRP for thousands of instances, configured with keepalived.conf."""


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
