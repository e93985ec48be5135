"""Where the pinned state cannot be made (a read-only bpffs, as systemd's
ProtectKernelTunables leaves it), `zeroserve run` serves without its edge layers and says
why, instead of dying: the sites matter more than the filters in front of them."""

from __future__ import annotations

import subprocess
import time

from tests.netns.conftest import http_get
from tests.support import free_port


def test_read_only_bpffs_serves_without_edge(star, zeroserve_bin, tmp_path):
    port = free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(f':{port} {{\n\trespond "served"\n}}\n')
    # `ip netns exec` gives the command a mount namespace of its own, so this bpffs is
    # read-only for the agent alone.
    script = f'mount -t bpf -o ro bpf /sys/fs/bpf && exec "$0" run -c {caddyfile} --workers 1'
    proc = subprocess.Popen(
        ["ip", "netns", "exec", star.hub, "sh", "-c", script, str(zeroserve_bin)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while body is None and time.monotonic() < deadline and proc.poll() is None:
            body = http_get(star.hub, f"http://127.0.0.1:{port}/")
        assert body == "served", proc.stderr.read() if proc.poll() is not None else body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    warning = next(line for line in err.splitlines() if "edge layers disabled" in line)
    assert "Read-only file system" in warning
    assert "Traceback" not in err
