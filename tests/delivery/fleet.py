"""A fleet of systemd-nspawn containers booted from the appliance's root, for `make test-fleet`.

Each edge boots systemd on a volatile overlay of the unpacked root squashfs, in a network
namespace of its own joined to this host by a veth pair on 198.18.20.0/24 (one /30 each), with
a private bpffs. Ansible reaches the containers with the nsenter connection (no SSH).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.delivery.appliance import NAME, OUT


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def unpack_root(dest: Path) -> Path:
    """The appliance's root filesystem, unpacked from the update bundle's squashfs."""
    squashfs = dest.parent / "root.squashfs"
    with tarfile.open(OUT / f"{NAME}.update.tar") as tar:
        member = tar.getmember("root.squashfs")
        with tar.extractfile(member) as src, squashfs.open("wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    sh("unsquashfs", "-q", "-n", "-d", str(dest), str(squashfs), timeout=600)
    squashfs.unlink()
    return dest


@dataclass
class Edge:
    name: str
    index: int
    workdir: Path
    proc: subprocess.Popen | None = None
    leader: int = 0

    @property
    def netns(self) -> str:
        return f"zsfleet-{self.name}"

    @property
    def host_veth(self) -> str:
        return f"zsf{self.index}"

    @property
    def address(self) -> str:
        return f"198.18.20.{4 * self.index + 2}"

    @property
    def gateway(self) -> str:
        return f"198.18.20.{4 * self.index + 1}"

    def start(self, root: Path) -> None:
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "zs0",
           "netns", self.netns)  # fmt: skip
        sh("ip", "addr", "add", f"{self.gateway}/30", "dev", self.host_veth)
        sh("ip", "link", "set", self.host_veth, "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "zs0")
        sh("ip", "-n", self.netns, "link", "set", "zs0", "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        bpffs = self.workdir / "bpffs"
        bpffs.mkdir()
        sh("mount", "-t", "bpf", "bpf", str(bpffs))
        log = (self.workdir / "console.log").open("wb")
        # --register=no --keep-unit: nspawn needs no service manager on this host.
        self.proc = subprocess.Popen(
            [
                "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                f"--directory={root}", "--volatile=overlay", f"--machine={self.name}",
                f"--network-namespace-path=/run/netns/{self.netns}",
                # With --network-namespace-path nspawn leaves CAP_NET_ADMIN out of the bounding
                # set, and its seccomp filter refuses bpf() to the container's services (EPERM
                # on the first map; seen on 252): the edge layers need both.
                "--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN", "--system-call-filter=bpf",
                f"--bind={bpffs}:/sys/fs/bpf",
                # bcc looks up the running kernel's headers (linked by tools/setup.sh).
                f"--bind-ro=/lib/modules/{os.uname().release}",
                "--console=passive",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def find_leader(self) -> int:
        """The container's PID 1, as seen from here: the descendant whose innermost PID is 1."""
        assert self.proc is not None
        pending = [self.proc.pid]
        while pending:
            pid = pending.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            if nspid.split()[1:] and nspid.split()[-1] == "1" and len(nspid.split()) > 2:
                return pid
            pending += [int(c) for c in children]
        return 0

    def exec(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return sh("nsenter", "-t", str(self.leader), "-a", *argv, check=False, timeout=timeout)

    def wait_booted(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.console()}")
            self.leader = self.leader or self.find_leader()
            if self.leader:
                state = self.exec("systemctl", "is-system-running", "--wait", timeout=timeout)
                if state.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} did not boot in {timeout}s:\n{self.console()}")

    def console(self) -> str:
        return (self.workdir / "console.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        sh("umount", str(self.workdir / "bpffs"), check=False)
        sh("ip", "link", "del", self.host_veth, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Balancer:
    """A client in front of the fleet, as a load balancer would be: it polls each edge's health
    site and sends requests only to edges whose last check answered 200. Any request to an
    edge in rotation that does not get a 200 counts as failed."""

    edges: list[Edge]
    health_port: int = 2020
    served: Counter = field(default_factory=Counter)
    bodies: dict[str, set[bytes]] = field(default_factory=dict)
    drained: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            for edge in self.edges:
                try:
                    status, _ = get(f"http://{edge.address}:{self.health_port}/healthz", 1.0)
                except OSError:
                    status = 0
                if status != 200:
                    self.drained[edge.name] += 1
                    continue
                try:
                    status, body = get(f"http://{edge.address}/")
                except OSError as exc:
                    self.failures.append(f"{edge.name}: {exc}")
                    continue
                if status != 200:
                    self.failures.append(f"{edge.name}: status {status}")
                    continue
                self.served[edge.name] += 1
                self.bodies.setdefault(edge.name, set()).add(body)
            time.sleep(0.05)

    def start(self, limit_s: float = 900) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(time.monotonic() + limit_s,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
