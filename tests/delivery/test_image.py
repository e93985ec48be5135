"""`make test-image`: the built appliance boots, serves, updates A/B and rolls a bad update back.

`make test-image` builds the image (image/out/) first. KVM when /dev/kvm works, else TCG
(much slower). A guest reboot ends qemu (-no-reboot) and the harness starts it again.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.delivery.appliance import NAME, OUT, Guest, config_media, rebundle
from tests.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

CADDYFILE = b':80 {\n\trespond "served by the zeroserve appliance"\n}\n'
# The tries an update's entry gets (image/config.sh), i.e. the failed boots before fallback.
BOOT_TRIES = int(
    re.search(r"^BOOT_TRIES=(\d+)$", (REPO / "image" / "config.sh").read_text(), re.M).group(1)
)
# systemd-bless-boot's line once it dropped the counter (on the console by the image's drop-in).
BLESSED = "Marked boot as 'good'"


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    for suffix in (".qcow2", ".update.tar"):
        if not (OUT / f"{NAME}{suffix}").exists():
            pytest.fail(f"image/out/{NAME}{suffix} is missing: run `make image` first")
    release = (OUT / "VERSION").read_text().strip()
    return {"version": release}


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Guest:
    g = Guest(tmp_path_factory.mktemp("appliance"))
    yield g
    g.shutdown(timeout=30)


def test_boot_serves_the_config_media(guest, built, tmp_path_factory, record_property):
    media = config_media(tmp_path_factory.mktemp("media") / "config.img", {"Caddyfile": CADDYFILE})
    started = guest.boot(media)
    end = guest.wait_console(f"zeroserve-health: good: slot a version {built['version']}", 300)
    status, body = guest.get("/")
    boot_s = time.monotonic() - started
    record_property("boot_seconds", round(boot_s, 1))
    print(f"appliance boot to first response: {boot_s:.1f}s")
    assert (status, body) == (200, b"served by the zeroserve appliance")
    assert "zeroserve-config: imported Caddyfile" in guest.console()[:end]
    # The service's stderr goes to the console too: it runs its edge layers (sk_lookup here).
    assert '"msg":"edge layers attached"' in guest.console()
    assert "edge layers disabled" not in guest.console()
    assert guest.shutdown(), "the guest ignored the ACPI power button"
    # The factory entry is good from the start: no boot counter on it.
    assert guest.esp_entries() == ["zeroserve-a.conf"]


def test_update_boots_the_other_slot_and_is_blessed(guest, built, tmp_path_factory):
    new = built["version"] + ".1"
    work = tmp_path_factory.mktemp("update")
    bundle = rebundle(OUT / f"{NAME}.update.tar", work / "update.tar", new)
    media = config_media(work / "config.img", {"Caddyfile": CADDYFILE, "update.tar": bundle})
    mark = len(guest.console())
    guest.boot(media)
    at = guest.wait_console("zeroserve-update: slot b has " + new, 600, mark)
    written = time.monotonic()
    # The bundle carries the same root, so the booted system reports the build's version.
    at = guest.wait_console(f"zeroserve-health: good: slot b version {built['version']}", 300, at)
    assert guest.get("/") == (200, b"served by the zeroserve appliance")
    print(f"update written to first response from slot b: {time.monotonic() - written:.1f}s")
    # Powering off before systemd-bless-boot ran would cancel it (it conflicts with shutdown).
    guest.wait_console(BLESSED, 120, at)
    assert guest.shutdown(), "the guest ignored the ACPI power button"
    # systemd-bless-boot dropped the counter: slot b is good, slot a stays as the fallback.
    assert guest.esp_entries() == ["zeroserve-a.conf", "zeroserve-b.conf"]


def test_bad_update_runs_out_of_tries_and_falls_back(guest, built, tmp_path_factory):
    bad = built["version"] + ".2"
    work = tmp_path_factory.mktemp("bad")
    # A release whose server never starts: every boot of it fails the health check.
    bundle = rebundle(
        OUT / f"{NAME}.update.tar", work / "update.tar", bad, "systemd.mask=zeroserve.service"
    )
    media = config_media(work / "config.img", {"Caddyfile": CADDYFILE, "update.tar": bundle})
    mark = len(guest.console())
    guest.boot(media)
    at = guest.wait_console("zeroserve-update: slot a has " + bad, 600, mark)
    written = time.monotonic()
    for _ in range(BOOT_TRIES):
        at = guest.wait_console("Command line: initrd=\\zeroserve\\a\\", 300, at)
        at = guest.wait_console(
            f"zeroserve-health: bad: slot a version {built['version']}", 300, at
        )
    # No boot of the bad slot was blessed; the machine came back on slot b by itself.
    at = guest.wait_console("Command line: initrd=\\zeroserve\\b\\", 300, at)
    guest.wait_console(f"zeroserve-health: good: slot b version {built['version']}", 300, at)
    assert guest.get("/") == (200, b"served by the zeroserve appliance")
    print(f"bad update written to serving again from slot b: {time.monotonic() - written:.1f}s")
    log = guest.console()
    assert BLESSED not in log[mark:]
    assert log.count("zeroserve-health: bad: slot a", mark) == BOOT_TRIES
    assert guest.shutdown(), "the guest ignored the ACPI power button"
    # Slot a's entry spent its tries and counts as bad; b remains good.
    assert guest.esp_entries() == [f"zeroserve-a+0-{BOOT_TRIES}.conf", "zeroserve-b.conf"]
