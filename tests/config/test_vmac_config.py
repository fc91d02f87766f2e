"""use_vmac, vmac_xmit_base and vmac_prefix in keepalived.conf: parsed into
the model, and `hivrrp check` fails where keepalived 2.2.7's `keepalived -t`
fails, with keepalived's messages.

KEEPALIVED records what `keepalived -t -f FILE -l -D` printed and its exit code
(5: a configuration error); where keepalived is installed and we are root,
the test runs it to keep the record honest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.conf import load_text
from hivrrp.kernel.vmac_policy import vmac_mac


def host_interface() -> str:
    """A non-loopback interface of this host: keepalived -t judges what we ask,
    not a missing interface."""
    for name in sorted(os.listdir("/sys/class/net")):
        try:
            if Path(f"/sys/class/net/{name}/type").read_text().strip() == "1":
                return name
        except OSError:
            continue
    return "eth0"


def text(body: str, after: str = "", global_defs: str = "",
         interface: str | None = None) -> str:
    iface = interface or host_interface()
    return ((f"global_defs {{\n{global_defs}}}\n" if global_defs else "")
            + f"vrrp_instance VI_1 {{\n    interface {iface}\n    virtual_router_id 51\n"
            f"    priority 100\n{body}    virtual_ipaddress {{\n        192.0.2.26/24\n    }}\n"
            f"}}\n{after}")


SECOND = ("vrrp_instance VI_2 {\n    interface IFACE\n    virtual_router_id 52\n"
          "    use_vmac foo\n    virtual_ipaddress {\n        192.0.2.27/24\n    }\n}\n")
PEER = "    unicast_peer {\n        192.0.2.2\n    }\n"

# name: (config arguments, keepalived -t (exit, a line it printed), hivrrp check (exit,
# [(line, error)]))
CASES = {
    "use_vmac": ({"body": "    use_vmac\n"}, (0, ""), (0, [])),
    "name and MAC": ({"body": "    use_vmac myvmac 02:11:22:33:44:55\n"}, (0, ""), (0, [])),
    "five octets: the VRID completes the MAC": (
        {"body": "    use_vmac 02:11:22:33:44\n"}, (0, ""), (0, [])),
    "xmit_base without use_vmac": (
        {"body": "    vmac_xmit_base\n"}, (5, "(VI_1) vmac_xmit_base is only valid with a vmac"),
        (1, [(5, "(VI_1) vmac_xmit_base is only valid with a vmac")])),
    "unicast with use_vmac but no xmit_base": (
        {"body": "    use_vmac\n" + PEER},
        (5, "(VI_1) unicast with use_vmac requires vmac_xmit_base - setting"),
        (1, [(5, "(VI_1) unicast with use_vmac requires vmac_xmit_base - setting")])),
    "unicast with use_vmac and xmit_base": (
        {"body": "    use_vmac\n    vmac_xmit_base\n" + PEER}, (0, ""), (0, [])),
    "multicast MAC": (
        {"body": "    use_vmac 01:00:00:00:00:01\n"},
        (5, "VMAC MAC address is multicast 01:00:00:00:00:01 - ignoring"),
        (1, [(5, "VMAC MAC address is multicast 01:00:00:00:00:01 - ignoring")])),
    "the RFC 5798 MAC": (
        {"body": "    use_vmac 00:00:5e:00:01:09\n"},
        (5, "VMAC MAC address not allowed to be RFC5798 address (00:00:5e:00:01:09) - ignoring"),
        (1, [(5, "VMAC MAC address not allowed to be RFC5798 address")])),
    "not a MAC": (
        {"body": "    use_vmac 02:zz:22:33:44:55\n"},
        (5, "VMAC invalid MAC address 02:zz:22:33:44:55"),
        (1, [(5, "VMAC invalid MAC address 02:zz:22:33:44:55")])),
    "name too long": (
        {"body": "    use_vmac abcdefghijklmnopq\n"},
        (5, "VMAC interface name 'abcdefghijklmnopq' too long or invalid characters - ignoring"),
        (1, [(5, "VMAC interface name 'abcdefghijklmnopq' too long or invalid characters")])),
    "one name for two instances": (
        {"body": "    use_vmac foo\n", "after": SECOND},
        (5, "(VI_2) VRRP instance VI_1 is already using foo - ignoring name"),
        (1, [(13, "(VI_2) VRRP instance VI_1 is already using foo - ignoring name")])),
    "vmac_prefix": ({"body": "    use_vmac\n", "global_defs": "    vmac_prefix vx\n"},
                    (0, ""), (0, [])),
}


def write_case(tmp_path: Path, args: dict) -> Path:
    path = tmp_path / "keepalived.conf"
    path.write_text(text(**args).replace("IFACE", host_interface()))
    return path


@pytest.mark.parametrize("name", CASES)
def test_check_verdict(tmp_path, name):
    args, _keepalived, (code, errors) = CASES[name]
    path = write_case(tmp_path, args)
    result = subprocess.run([sys.executable, "-m", "hivrrp", "check", "-f", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    found = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(found) == len(errors), result.stderr
    for line, (number, start) in zip(found, errors):
        assert line.startswith(f"{path}:{number}: error: {start}"), line
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="keepalived -t runs as root")
@pytest.mark.parametrize("name", CASES)
def test_keepalived_said_what_we_recorded(tmp_path, name):
    args, (code, said), _ours = CASES[name]
    path = write_case(tmp_path, args)
    version = subprocess.run(["keepalived", "--version"], capture_output=True, text=True)
    if "v2.2.7 " not in version.stdout + version.stderr:
        pytest.skip("recorded with keepalived 2.2.7")
    result = subprocess.run(["keepalived", "-t", "-f", str(path), "-l", "-D"],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert said in output


def test_the_model_holds_the_vmac_settings(tmp_path):
    result = load_text(tmp_path, text("    use_vmac vm1 02:11:22:33:44\n    vmac_xmit_base\n",
                                      global_defs="    vmac_prefix vx\n", interface="eth0"))
    assert result.ok, result.errors
    [inst] = result.config.instances
    assert (inst.use_vmac, inst.vmac_mac, inst.vmac_xmit_base) == (
        "vm1", "02:11:22:33:44", True)
    assert vmac_mac(inst) == bytes.fromhex("021122334433")    # the VRID (51) appended
    assert result.config.global_defs.vmac_prefix == "vx"
    assert result.warnings == []


def test_use_vmac_on_an_address_is_said_not_to_be_supported(tmp_path):
    result = load_text(tmp_path, text("", interface="eth0").replace(
        "192.0.2.26/24", "192.0.2.26/24 use_vmac"))
    assert result.ok
    assert [(d.where.line, d.message.split(":")[0]) for d in result.warnings] == [
        (6, "192.0.2.26/24")]
    assert "'use_vmac' on an address is not supported" in result.warnings[0].message


def test_the_daemon_runs_with_keepalived_s_corrections(tmp_path):
    # keepalived -t fails (exit 5) and keepalived runs, corrected: check fails, run starts.
    result = load_text(tmp_path, text("    use_vmac 01:00:00:00:00:01\n" + PEER,
                                      interface="eth0"))
    assert result.ok and not result.clean
    [inst] = result.config.instances
    assert (inst.use_vmac, inst.vmac_mac, inst.vmac_xmit_base) == (True, None, True)
