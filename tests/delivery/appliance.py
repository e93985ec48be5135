"""Driving the appliance image under qemu for the slow delivery tests.

The guest gets user-mode networking with `restrict=on` (it reaches nothing) and one port
forwarded from 127.0.0.1; its serial console goes to a file that the tests read.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO, free_port

OUT = REPO / "image" / "out"
NAME = "zeroserve-appliance"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Some nested hosts refuse the guest writing IA32_ARCH_CAPABILITIES; the guest needs none.
KVM_CPU = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
# The guest kernel's last line before it resets the machine (a power-off says "Power down").
REBOOTING = "reboot: Restarting system"


@functools.cache
def kvm_usable() -> bool:
    """Whether KVM can run the firmware here: some nested hosts open /dev/kvm fine and then
    fail on the first instructions, so start the firmware for a moment and watch."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    argv = [
        "qemu-system-x86_64", "-machine", "q35", *KVM_CPU, "-m", "256", "-nodefaults",
        "-display", "none", "-no-user-config", "-serial", "none", "-monitor", "none",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=5)
        output, ok = proc.stdout + proc.stderr, proc.returncode == 0
    except subprocess.TimeoutExpired as exc:
        # Still running, but qemu only pauses a guest KVM failed on: look at what it said.
        output, ok = (exc.stdout or b"") + (exc.stderr or b""), True
    return ok and b"internal error" not in output


def config_media(path: Path, files: dict[str, Path | bytes]) -> Path:
    """A vfat filesystem labelled ZS-CONFIG holding `files`, as a raw disk image."""
    contents = {}
    for name, value in files.items():
        contents[name] = value.read_bytes() if isinstance(value, Path) else value
    size_kib = sum(len(v) for v in contents.values()) // 1024 + 64 * 1024
    subprocess.run(
        ["mkfs.vfat", "-C", "-n", "ZS-CONFIG", str(path), str(size_kib)],
        check=True,
        capture_output=True,
    )
    staging = path.parent / f"{path.name}.files"
    staging.mkdir()
    for name, data in contents.items():
        (staging / name).write_bytes(data)
        subprocess.run(
            ["mcopy", "-i", str(path), str(staging / name), f"::/{name}"],
            check=True,
            capture_output=True,
        )
    shutil.rmtree(staging)
    return path


def rebundle(src: Path, dest: Path, version: str, cmdline: str | None = None) -> Path:
    """The build's update bundle under another version (and extra kernel options)."""
    work = dest.parent / f"{dest.name}.d"
    work.mkdir()
    with tarfile.open(src) as tar:
        tar.extractall(work)  # the build's own bundle
    (work / "version").write_text(version + "\n")
    names = ["root.squashfs", "vmlinuz", "initrd.img", "version"]
    if cmdline is not None:
        (work / "cmdline").write_text(cmdline + "\n")
        names.append("cmdline")
    sums = subprocess.run(
        ["sha256sum", *names], cwd=work, check=True, capture_output=True, text=True
    ).stdout
    (work / "SHA256SUMS").write_text(sums)
    with tarfile.open(dest, "w") as tar:
        for name in ["SHA256SUMS", *names]:
            tar.add(work / name, arcname=name)
    shutil.rmtree(work)
    return dest


@dataclass
class Guest:
    """One qemu machine with the appliance disk (a qcow2 overlay of the build's)."""

    workdir: Path
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    # qemu runs with -no-reboot: a guest reboot ends the process and `check_running` starts
    # the same machine again. Under TCG, qemu's own reset sometimes left OVMF spinning with
    # nothing on the console for minutes; a fresh process boots every time, and the disk,
    # the EFI variables and the media persist across it just as across a reset.
    argv: list[str] = field(default_factory=list)
    launched_at: int = 0
    reboots: int = 0
    serial: Path = field(init=False)
    disk: Path = field(init=False)
    vars: Path = field(init=False)

    def __post_init__(self) -> None:
        self.serial = self.workdir / "serial.log"
        self.disk = self.workdir / "disk.qcow2"
        self.vars = self.workdir / "OVMF_VARS.fd"
        base = OUT / f"{NAME}.qcow2"
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                str(base),
                str(self.disk),
                "6G",
            ],
            check=True,
        )
        shutil.copyfile(OVMF_VARS, self.vars)

    def boot(self, media: Path | None = None) -> float:
        """Start qemu; returns the monotonic start time."""
        accel = KVM_CPU if kvm_usable() else ["-accel", "tcg", "-cpu", "max"]
        argv = [
            "qemu-system-x86_64", "-machine", "q35", *accel, "-m", "1536", "-smp", "1",
            "-nodefaults", "-display", "none", "-no-user-config",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}",
            "-drive", f"if=none,id=disk,format=qcow2,file={self.disk}",
            "-device", "virtio-blk-pci,drive=disk,bootindex=0",
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{self.http_port}-:80",
            "-device", "virtio-net-pci,netdev=net0",
            "-chardev", f"file,id=serial0,path={self.serial},append=on",
            "-serial", "chardev:serial0",
            "-monitor", f"unix:{self.workdir / 'monitor.sock'},server=on,wait=off",
            "-no-reboot",
        ]  # fmt: skip
        if media is not None:
            argv += [
                "-drive", f"if=none,id=media,format=raw,readonly=on,file={media}",
                "-device", "virtio-blk-pci,drive=media",
            ]  # fmt: skip
        self.argv = argv
        self.launch()
        return time.monotonic()

    def launch(self) -> None:
        # A test that failed mid-boot leaves its qemu running: never two on one disk.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.launched_at = len(self.console())
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_console(self, text: str, timeout: float, after: int = 0) -> int:
        """Wait for `text` on the serial console past offset `after`; returns its end offset."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.console()
            at = log.find(text, after)
            if at >= 0:
                return at + len(text)
            self.check_running()
            time.sleep(0.5)
        raise AssertionError(f"no {text!r} on the console in {timeout}s:\n{self.console()[-3000:]}")

    def check_running(self) -> None:
        """Raise if qemu ended other than by a guest reboot; start it again after a reboot."""
        if self.proc is None or self.proc.poll() is None:
            return
        rebooted = REBOOTING in self.console()[self.launched_at :]
        if self.proc.returncode == 0 and rebooted:
            self.reboots += 1
            self.launch()
            return
        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
        raise AssertionError(f"qemu exited with {self.proc.returncode}: {err}")

    def get(self, path: str = "/", timeout: float = 120) -> tuple[int, bytes]:
        """GET through the forwarded port, retrying until the guest answers."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                url = f"http://127.0.0.1:{self.http_port}{path}"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except OSError as exc:
                last = exc
                time.sleep(0.5)
        raise AssertionError(f"no HTTP answer in {timeout}s ({last}):\n{self.console()[-3000:]}")

    def shutdown(self, timeout: float = 120) -> bool:
        """ACPI power-off through the monitor; kill only if the guest ignores it. Returns
        whether the guest powered itself off (so its disk is consistent to inspect)."""
        clean = True
        if self.proc is None:
            return clean
        if self.proc.poll() is None:
            with socket.socket(socket.AF_UNIX) as mon:
                mon.connect(str(self.workdir / "monitor.sock"))
                mon.sendall(b"system_powerdown\n")
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    clean = False
        self.proc = None
        return clean

    def esp_entries(self) -> list[str]:
        """Boot entry file names on the guest's ESP (read from the disk while it is off)."""
        raw = self.workdir / "inspect.raw"
        subprocess.run(
            ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(self.disk), str(raw)],
            check=True,
        )
        try:
            table = json.loads(
                subprocess.run(
                    ["sfdisk", "--json", str(raw)], check=True, capture_output=True, text=True
                ).stdout
            )["partitiontable"]
            esp = next(p for p in table["partitions"] if p.get("name") == "zs-esp")
            offset = esp["start"] * table.get("sectorsize", 512)
            listing = subprocess.run(
                ["mdir", "-b", "-i", f"{raw}@@{offset}", "::/loader/entries"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            raw.unlink()
        return sorted(Path(line.strip()).name for line in listing.splitlines() if line.strip())
