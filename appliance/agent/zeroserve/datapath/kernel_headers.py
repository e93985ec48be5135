"""Point bcc at Debian's kernel headers when the running kernel ships none.

bcc looks for `/lib/modules/<release>/build` (generated headers, .config) and
`/lib/modules/<release>/source` (the common tree). Debian splits one header set into
`linux-headers-<v>-amd64` (build) and `linux-headers-<v>-common` (source); the amd64
Makefile names its common tree in an `include` line, which is how we pair them.
`BCC_KERNEL_SOURCE` is no substitute: bcc then uses that one directory for both
roles, and neither Debian directory holds both halves.

The headers need not match the running kernel exactly: BPF programs compiled
here only use UAPI structs and helper numbers, which are stable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Files bcc's clang front end reads first; their presence proves a usable tree.
BUILD_MARKER = "include/generated/autoconf.h"
SOURCE_MARKER = "include/linux/kconfig.h"


class KernelHeadersError(Exception):
    """No usable header tree: the message says what to install."""


@dataclass(frozen=True)
class HeaderTree:
    build: Path
    source: Path


@dataclass(frozen=True)
class EnsureResult:
    release: str
    tree: HeaderTree
    changed: bool

    def __str__(self) -> str:
        verb = "linked" if self.changed else "already linked"
        return (
            f"kernel headers for {self.release}: {verb} build={self.tree.build} "
            f"source={self.tree.source}"
        )


def _version_key(path: Path) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", path.name)]


def _common_of(build: Path) -> Path | None:
    try:
        text = (build / "Makefile").read_text()
    except OSError:
        return None
    match = re.search(r"^include\s+(\S+)/Makefile\s*$", text, re.MULTILINE)
    return Path(match.group(1)) if match else None


def find_debian_tree(src_root: Path = Path("/usr/src")) -> HeaderTree:
    """The newest `linux-headers-*-amd64` under src_root with its common tree."""
    candidates = sorted(src_root.glob("linux-headers-*-amd64"), key=_version_key, reverse=True)
    for build in candidates:
        source = _common_of(build)
        if source and (build / BUILD_MARKER).is_file() and (source / SOURCE_MARKER).is_file():
            return HeaderTree(build=build, source=source)
    raise KernelHeadersError(
        f"no usable linux-headers-*-amd64 tree under {src_root}: "
        "apt-get install linux-headers-amd64"
    )


def is_usable(modules_dir: Path) -> bool:
    """True if bcc would find both halves of a header tree in modules_dir."""
    return (modules_dir / "build" / BUILD_MARKER).is_file() and (
        modules_dir / "source" / SOURCE_MARKER
    ).is_file()


def _link(link: Path, target: Path) -> None:
    """Make `link` a symlink to target, atomically replacing a stale symlink."""
    if link.is_symlink() or not link.exists():
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    else:
        raise KernelHeadersError(f"{link} exists and is not a symlink: leaving it alone")


def ensure_kernel_headers(
    modules_root: Path = Path("/lib/modules"),
    release: str | None = None,
    src_root: Path = Path("/usr/src"),
) -> EnsureResult:
    """Make `<modules_root>/<release>/{build,source}` usable by bcc; idempotent.

    A tree that already works (the kernel's own, or links from an earlier run) is
    left as it is.
    """
    release = release or os.uname().release
    modules_dir = modules_root / release
    if is_usable(modules_dir):
        tree = HeaderTree((modules_dir / "build").resolve(), (modules_dir / "source").resolve())
        return EnsureResult(release, tree, changed=False)
    tree = find_debian_tree(src_root)
    modules_dir.mkdir(parents=True, exist_ok=True)
    _link(modules_dir / "build", tree.build)
    _link(modules_dir / "source", tree.source)
    return EnsureResult(release, tree, changed=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zeroserve.datapath.kernel_headers")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--ensure", action="store_true", help="create the links if needed")
    mode.add_argument("--check", action="store_true", help="exit 1 unless bcc can find headers")
    parser.add_argument("--modules-root", type=Path, default=Path("/lib/modules"))
    parser.add_argument("--src-root", type=Path, default=Path("/usr/src"))
    args = parser.parse_args(argv)
    if args.check:
        modules_dir = args.modules_root / os.uname().release
        if is_usable(modules_dir):
            print(f"kernel headers: usable at {modules_dir}")
            return 0
        print(f"kernel headers: missing at {modules_dir}", file=sys.stderr)
        return 1
    try:
        print(ensure_kernel_headers(args.modules_root, src_root=args.src_root))
    except (KernelHeadersError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
