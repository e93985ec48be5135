"""`zeroserve adapt` vs `caddy adapt` on large Caddyfiles: wall time, CPU time, peak memory.

Two generated inputs: 1,000 small sites, and 10,000 lines of fewer, larger sites. Both use
the directives real configs are made of (reverse_proxy, file_server, header, handle,
handle_path, named and inline matchers, redir, encode, snippets). Each round runs both
adapters once per input, alternating which goes first; the table shows medians of the
rounds. Wall time is the whole CLI invocation (interpreter start included: it is what an
operator waits for); CPU time (user+system) and peak memory (max RSS) are the child's own,
from wait4(2). On a shared machine CPU time is the steadier of the two times.

    python bench/adapt_bench.py [--rounds 5] [--keep DIR] [--nice N] [--no-doc]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    BenchError,
    caddy_binary,
    child_env,
    command_line,
    fail,
    fmt_num,
    fmt_ratio,
    machine_line,
    md_table,
    median,
    parse_args,
    publish,
    ratio,
    run_measured,
    zeroserve_binary,
)

GLOBAL = """\
{
	email ops@example.com
	grace_period 10s
}

(common) {
	encode zstd gzip
	header {
		Strict-Transport-Security "max-age=31536000; includeSubDomains"
		X-Content-Type-Options nosniff
		Referrer-Policy strict-origin-when-cross-origin
		-Server
	}
}

(logs) {
	log {
		output discard
	}
}
"""


def small_site(i: int) -> str:
    """One of four site shapes, chosen by index, each a few lines long."""
    kind = i % 4
    if kind == 0:
        return f"""\
site{i}.example.com, www.site{i}.example.com {{
	import common
	root * /srv/site{i}/public
	redir /old-{i} /new-{i} 301
	file_server
}}
"""
    if kind == 1:
        return f"""\
api{i}.example.com {{
	@api path /api/* /v{i % 3 + 1}/*
	handle @api {{
		reverse_proxy 10.{i // 250}.{i % 250}.10:8080 10.{i // 250}.{i % 250}.11:8080 {{
			lb_policy round_robin
			header_up X-Real-IP {{remote_host}}
		}}
	}}
	handle /health {{
		respond "OK" 200
	}}
	respond "not found" 404
}}
"""
    if kind == 2:
        return f"""\
app{i}.example.com {{
	import common
	@static {{
		path *.css *.js *.png *.woff2
		method GET HEAD
	}}
	header @static Cache-Control "public, max-age=3600"
	handle_path /static/* {{
		root * /srv/app{i}/static
		file_server
	}}
	reverse_proxy /ws 127.0.0.1:{9000 + i % 1000}
	reverse_proxy localhost:{3000 + i % 1000}
}}
"""
    return f"""\
http://legacy{i}.example.net {{
	import logs
	redir https://site{i}.example.com{{uri}} permanent
}}
"""


def large_site(i: int, sections: int) -> str:
    """A site with many path sections, as a big application front door has."""
    parts = [f"portal{i}.example.org {{", "\timport common", "\timport logs"]
    for s in range(sections):
        shape = s % 5
        if shape == 0:
            parts += [
                f"\t@svc{s} {{",
                f"\t\tpath /svc{s}/*",
                f"\t\theader X-Tenant t{s}",
                "\t}",
                f"\thandle @svc{s} {{",
                f"\t\treverse_proxy 10.20.{s % 250}.{i % 250 + 1}:{8000 + s}",
                "\t}",
            ]
        elif shape == 1:
            parts += [
                f"\thandle_path /assets{s}/* {{",
                f"\t\troot * /srv/portal{i}/a{s}",
                "\t\tfile_server",
                "\t}",
            ]
        elif shape == 2:
            parts += [f"\tredir /moved{s} /svc{s - 2}/ 308"]
        elif shape == 3:
            parts += [
                f"\thandle /info{s} {{",
                '\t\theader Content-Type "application/json"',
                f'\t\trespond `{{"section": {s}}}` 200',
                "\t}",
            ]
        else:
            parts += [f"\t@m{s} method POST PUT DELETE", f"\theader @m{s} Cache-Control no-store"]
    parts += ["\thandle {", f"\t\troot * /srv/portal{i}/www", "\t\tfile_server", "\t}", "}", ""]
    return "\n".join(parts)


def thousand_sites() -> str:
    return GLOBAL + "\n" + "\n".join(small_site(i) for i in range(1000))


def ten_thousand_lines() -> str:
    target = 10_000
    chunks = [GLOBAL]
    lines = GLOBAL.count("\n")
    i = 0
    while lines < target:
        site = large_site(i, 40)
        chunks.append(site)
        lines += site.count("\n")
        i += 1
    return "\n".join(chunks)


INPUTS = {"1,000 sites": thousand_sites, "10,000 lines": ten_thousand_lines}


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    outputs: set[bytes] = field(default_factory=set)
    error: str | None = None


def adapt_argv(name: str, path: Path) -> list[str]:
    if name == "caddy":
        return [str(caddy_binary()), "adapt", "--config", str(path), "--adapter", "caddyfile"]
    zs = zeroserve_binary()
    if zs is None:
        raise BenchError("no .venv/bin/zeroserve")
    return [str(zs), "adapt", "--config", str(path), "--adapter", "caddyfile"]


def order(round_no: int) -> Iterator[str]:
    """Alternate who goes first, so caches and drift favour neither."""
    return iter(("caddy", "zeroserve") if round_no % 2 == 0 else ("zeroserve", "caddy"))


def measure(rounds: int, scratch: Path) -> tuple[dict[str, int], dict[str, dict[str, Samples]]]:
    lines: dict[str, int] = {}
    results: dict[str, dict[str, Samples]] = {}
    env = child_env(scratch)
    for label, make in INPUTS.items():
        path = scratch / f"Caddyfile.{label.split()[0].replace(',', '')}"
        path.write_text(make())
        lines[label] = path.read_text().count("\n")
        results[label] = {"caddy": Samples(), "zeroserve": Samples()}
        for r in range(rounds):
            for name in order(r):
                samples = results[label][name]
                if samples.error is not None:
                    continue
                try:
                    argv = adapt_argv(name, path)
                except BenchError as exc:
                    samples.error = str(exc)
                    continue
                out, err = scratch / f"{name}.out", scratch / f"{name}.err"
                run = run_measured(argv, out, err, env=env)
                if run.returncode != 0:
                    msg = err.read_text(errors="replace").strip().splitlines() or ["(no output)"]
                    samples.error = f"exit {run.returncode}: {msg[-1][:160]}"
                    if name == "caddy":
                        raise BenchError(
                            f"caddy adapt rejects the generated {label} input: {samples.error}"
                        )
                    continue
                samples.wall.append(run.wall_seconds)
                samples.cpu.append(run.cpu_seconds)
                samples.rss.append(run.max_rss_kib)
                samples.outputs.add(out.read_bytes())
                print(
                    f"  {label:>12} round {r + 1} {name:>9}: {run.wall_seconds * 1000:8.1f} ms"
                    f" (CPU {run.cpu_seconds * 1000:8.1f} ms)"
                    f"  {run.max_rss_kib / 1024:7.1f} MiB",
                    flush=True,
                )
    return lines, results


def identical(results: dict[str, Samples]) -> str:
    zs, caddy = results["zeroserve"], results["caddy"]
    if zs.error is not None:
        return f"fails: `{zs.error}`"
    return "yes" if zs.outputs == caddy.outputs else "**no** (differs from caddy adapt)"


def report(rounds: int, lines: dict[str, int], results: dict[str, dict[str, Samples]]) -> str:
    rows = []
    for label, by_name in results.items():
        caddy, zs = by_name["caddy"], by_name["zeroserve"]
        c_wall = median(caddy.wall) * 1000
        c_cpu = median(caddy.cpu) * 1000
        z_cpu = median(zs.cpu) * 1000 if zs.cpu else None
        c_rss = median(caddy.rss) / 1024
        z_wall = median(zs.wall) * 1000 if zs.wall else None
        z_rss = median(zs.rss) / 1024 if zs.rss else None
        rows.append(
            [
                label,
                f"{lines[label]:,}",
                fmt_num(c_wall, 1),
                fmt_num(z_wall, 1),
                fmt_ratio(ratio(z_wall, c_wall)),
                fmt_num(c_cpu, 1),
                fmt_num(z_cpu, 1),
                fmt_ratio(ratio(z_cpu, c_cpu)),
                fmt_num(c_rss, 1),
                fmt_num(z_rss, 1),
                fmt_ratio(ratio(z_rss, c_rss)),
                identical(by_name),
            ]
        )
    table = md_table(
        [
            "input",
            "lines",
            "caddy wall ms",
            "zeroserve wall ms",
            "wall ratio",
            "caddy CPU ms",
            "zeroserve CPU ms",
            "CPU ratio",
            "caddy peak MiB",
            "zeroserve peak MiB",
            "memory ratio",
            "output identical",
        ],
        rows,
    )
    return (
        f"Command: `{command_line()}`\n\n"
        f"Machine: {machine_line()}. Median of {rounds} rounds; each round runs both "
        "adapters once per input, alternating which goes first. Wall time is the whole "
        "CLI process (start-up included); CPU time (user+system) and peak memory (max RSS) "
        "are the child's own, from wait4(2).\n\n"
        f"{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", type=Path, help="write the generated Caddyfiles here and keep")
    args = parse_args(parser, default_rounds=5)
    try:
        with tempfile.TemporaryDirectory(prefix="zs-adapt-bench-") as tmp:
            scratch = args.keep or Path(tmp)
            scratch.mkdir(parents=True, exist_ok=True)
            lines, results = measure(args.rounds, scratch)
            body = report(args.rounds, lines, results)
    except BenchError as exc:
        fail(str(exc))
    publish(body, args, "adapt", "Caddyfile front end: `zeroserve adapt` vs `caddy adapt`")


if __name__ == "__main__":
    main()
