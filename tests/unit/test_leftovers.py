"""What a starting daemon and `hivrrp release` take for a previous run's VIPs."""

import logging

from helpers.plans import ADDRESSES, instance_text, plan_of
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.netlink import Address
from hivrrp.kernel.vipqueue import leftovers

TEXT = instance_text("VI_1", 51, ["192.0.2.51/24", "192.0.2.52/24"])


def test_only_the_configurations_vips_on_their_interface(tmp_path):
    plan = plan_of(tmp_path, TEXT)
    present = ADDRESSES + [Address(2, 4, "192.0.2.51", 24, 0),   # ours, on eth0
                           Address(3, 4, "192.0.2.52", 24, 0),   # on eth1: not ours
                           Address(2, 4, "192.0.2.99", 24, 0)]   # not a VIP
    assert leftovers(plan, present) == [Change(False, 2, 4, "192.0.2.51", 24)]


def test_removed_with_the_prefix_length_the_kernel_has(tmp_path, caplog):
    # The file's prefix changed after the previous run added the VIP: a removal
    # with the file's /24 is refused by the kernel (EADDRNOTAVAIL, counted as
    # done) and the address stayed up while release said it was removed.
    caplog.set_level(logging.INFO, logger="hivrrp")
    plan = plan_of(tmp_path, TEXT)
    present = ADDRESSES + [Address(2, 4, "192.0.2.51", 32, 0), Address(2, 4, "192.0.2.52", 24, 0),
                           Address(2, 4, "192.0.2.52", 28, 0)]
    assert leftovers(plan, present) == [Change(False, 2, 4, "192.0.2.51", 32),
                                        Change(False, 2, 4, "192.0.2.52", 24),
                                        Change(False, 2, 4, "192.0.2.52", 28)]
    assert "192.0.2.51/32 is 192.0.2.51/24 of the configuration" in caplog.text
