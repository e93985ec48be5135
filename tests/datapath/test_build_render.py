"""render.py, build.py, structs.py and kernel_headers.py against real files and
the real compiler: what the compiler says reaches the caller, with the header
and line where the error is, and nothing is left pinned."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import jinja2
import pytest

from zeroserve.datapath import build, kernel_headers, libbpf, render, structs
from zeroserve.datapath.xdp import XdpFeatures, render_xdp


def test_render_inlines_local_headers_once_with_line_markers(layout):
    src = render_xdp(XdpFeatures(), layout)
    lines = src.splitlines()
    assert lines.count('#line 1 "maps.h"') == 1, "maps.h is included by several headers"
    assert '#include "' not in src
    assert "#include <uapi/linux/bpf.h>" in lines
    assert f'#define ZS_PIN_DIR "{layout.fresh_dir("xdp")}"' in lines
    assert "#define ZS_FEATURE_DENY_V6 1" in lines


def test_render_leaves_out_disabled_features(layout):
    src = render_xdp(XdpFeatures(deny_v6=False, vlan=False, rules_max=7), layout)
    assert "#define ZS_FEATURE_DENY_V6" not in src
    assert "#define ZS_FEATURE_VLAN" not in src
    assert "#define ZS_RULES_MAX 7" in src.splitlines()


def test_render_refuses_missing_variables():
    with pytest.raises(jinja2.UndefinedError, match="'pin_dir' is undefined"):
        render.render("xdp/entry.c.j2", defines={})


def test_compile_error_names_the_header_and_line(layout, tmp_path):
    bpf_dir = tmp_path / "bpf"
    shutil.copytree(render.BPF_DIR, bpf_dir)
    deny = bpf_dir / "include" / "deny.h"
    text = deny.read_text()
    deny.write_text(text.replace("return rule ? rule->id", "return rule ? rule->idd", 1))
    wrong_line = next(
        n for n, line in enumerate(deny.read_text().splitlines(), 1) if "rule->idd" in line
    )
    layout.prepare("xdp")
    src = render.render(
        "xdp/entry.c.j2",
        bpf_dir,
        pin_dir=str(layout.hook_dir("xdp")),
        defines=XdpFeatures().defines(),
    )
    with pytest.raises(build.BuildError) as err:
        build.build(src, [build.ProgramSpec("zs_xdp", libbpf.PROG_TYPE_XDP)], layout)
    assert f"deny.h:{wrong_line}:" in str(err.value)
    assert "no member named 'idd' in 'struct zs_rule'" in str(err.value)
    assert os.listdir(layout.base / "handoff") == []


def test_verifier_rejection_is_reported(layout):
    src = (
        "#include <uapi/linux/bpf.h>\n"
        "int bad(struct xdp_md *ctx) { return *(int *)(long)ctx->data; }\n"
    )
    with pytest.raises(build.BuildError, match="invalid access to packet"):
        build.build(src, [build.ProgramSpec("bad", libbpf.PROG_TYPE_XDP)], layout)
    assert os.listdir(layout.base / "handoff") == []


def test_unknown_function_is_reported(layout):
    src = "#include <uapi/linux/bpf.h>\nint ok(struct xdp_md *ctx) { return XDP_PASS; }\n"
    with pytest.raises(build.BuildError, match="missing"):
        build.build(src, [build.ProgramSpec("missing", libbpf.PROG_TYPE_XDP)], layout)


def test_build_hands_over_programs_and_their_fds(layout):
    src = "#include <uapi/linux/bpf.h>\nint ok(struct xdp_md *ctx) { return XDP_PASS; }\n"
    with build.build(src, [build.ProgramSpec("ok", libbpf.PROG_TYPE_XDP)], layout) as built:
        prog = built.programs["ok"]
        assert (prog.info.type, prog.info.name) == (libbpf.PROG_TYPE_XDP, "ok")
        assert libbpf.prog_info(prog.fd).id == prog.info.id
        assert libbpf.prog_test_run(prog.fd, bytes(64)).retval == 2
        fd = prog.fd
    assert prog.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    assert os.listdir(layout.base / "handoff") == []


def test_build_child_timeout(layout):
    src = "#include <uapi/linux/bpf.h>\nint ok(struct xdp_md *ctx) { return XDP_PASS; }\n"
    with pytest.raises(build.BuildError, match="did not finish in 0s"):
        build.build(src, [build.ProgramSpec("ok", libbpf.PROG_TYPE_XDP)], layout, timeout=0.01)


def test_structs_mirror_matches_the_header():
    assert ctypes.sizeof(structs.STRUCTS["zs_lpm6_key"]) == 24
    assert [f for f, _ in structs.STRUCTS["zs_counter"]._fields_] == ["packets", "bytes"]
    assert structs.CONSTS["ZS_REASON_DENY"] == 1


def test_structs_mirror_refuses_what_it_cannot_mirror():
    with pytest.raises(ValueError, match=r"struct x: cannot mirror 'char \*name;'"):
        structs.parse_structs("struct x {\n\t__u32 a;\n\tchar *name;\n};")


def test_kernel_headers_links_debian_trees(tmp_path):
    first = kernel_headers.ensure_kernel_headers(tmp_path, release="9.9.9-test")
    assert first.changed
    build_link, source_link = tmp_path / "9.9.9-test" / "build", tmp_path / "9.9.9-test" / "source"
    assert build_link.is_symlink() and source_link.is_symlink()
    assert build_link.resolve().name.endswith("-amd64")
    assert source_link.resolve().name.endswith("-common")
    assert kernel_headers.is_usable(tmp_path / "9.9.9-test")
    again = kernel_headers.ensure_kernel_headers(tmp_path, release="9.9.9-test")
    assert not again.changed and again.tree == first.tree


def test_kernel_headers_replaces_a_stale_link(tmp_path):
    modules = tmp_path / "9.9.9-test"
    modules.mkdir()
    (modules / "build").symlink_to(tmp_path / "gone")
    assert kernel_headers.ensure_kernel_headers(tmp_path, release="9.9.9-test").changed
    assert kernel_headers.is_usable(modules)


def test_kernel_headers_leaves_a_real_directory_alone(tmp_path):
    (tmp_path / "9.9.9-test" / "build").mkdir(parents=True)
    with pytest.raises(kernel_headers.KernelHeadersError, match="is not a symlink"):
        kernel_headers.ensure_kernel_headers(tmp_path, release="9.9.9-test")


def test_kernel_headers_says_what_to_install(tmp_path):
    with pytest.raises(
        kernel_headers.KernelHeadersError, match="apt-get install linux-headers-amd64"
    ):
        kernel_headers.ensure_kernel_headers(
            tmp_path, release="9.9.9-test", src_root=tmp_path / "src"
        )


def test_kernel_headers_cli(tmp_path, capsys):
    assert kernel_headers.main(["--ensure", "--modules-root", str(tmp_path)]) == 0
    assert "kernel headers for" in capsys.readouterr().out
    assert kernel_headers.main(["--check", "--modules-root", str(tmp_path)]) == 0
    assert kernel_headers.main(["--check", "--modules-root", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("kernel headers: missing at ")
    bad = [
        "--ensure",
        "--modules-root",
        str(tmp_path / "m"),
        "--src-root",
        str(Path("/nonexistent")),
    ]
    assert kernel_headers.main(bad) == 1
    assert capsys.readouterr().err.startswith("Error: no usable linux-headers-*-amd64 tree")
