"""``make bench``: run the benchmarks, write ``bench/results.json``, print the table.

Each benchmark script prints its own figures and reports its headline figures through
``_results.record`` (into a JSON-lines file named by ``BENCH_RESULTS``).  This script runs them
one after the other (``--only NAME,...`` for some of them; the others keep their last results),
and writes ``bench/results.json``: per benchmark, the figures, the reference's, the ratio and the
target, with the machine, the date, the commit and the load average around its run.  The docs'
table (``docs/developer/benchmarks.md``) is generated from that file when the site is built; no
figure there is typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results.json"

#: name -> (script, arguments); the order is the table's.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "startup": ("bench_startup.py", []),
    "build": ("build_vs_xorriso.py", []),
    "sbom": ("sbom_vs_tar.py", []),
    "validate": ("validate_vs_openssl.py", []),
    "import": ("import_vs_openssl.py", []),
    "memory": ("peak_memory.py", []),
    "large": ("large_archive.py", []),
    "pull": ("registry_pull.py", []),
    "push": ("push_vs_skopeo.py", []),
    "push-incremental": ("push_incremental.py", []),
    "environments": ("environments.py", []),
    "control-plane": ("control_plane_startup.py", []),
}


def machine() -> dict[str, Any]:
    model = ""
    with Path("/proc/cpuinfo").open(encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with Path("/proc/meminfo").open(encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_one(name: str, when: dict[str, Any]) -> list[dict[str, Any]]:
    script, args = BENCHMARKS[name]
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as out:
        lines_path = Path(out.name)
    env = dict(os.environ, BENCH_RESULTS=str(lines_path))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measured with bytecode cached, as installed
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    print(f"== {name}: {script} {' '.join(args)}", flush=True)
    status = subprocess.run([sys.executable, str(BENCH / script), *args], env=env, check=False)
    elapsed = time.monotonic() - started
    records = [json.loads(line) for line in lines_path.read_text().splitlines() if line]
    lines_path.unlink(missing_ok=True)
    context = {
        **when,
        "seconds": round(elapsed, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    if status.returncode != 0 or not records:
        reason = f"exit {status.returncode}" if status.returncode else "no figure recorded"
        return [{"benchmark": name, "measure": script, "error": reason, **context}]
    return [{**record, **context} for record in records]


def table(results: list[dict[str, Any]]) -> str:
    rows = ["benchmark  measure  ours  reference  ratio  target  met"]
    for r in results:
        if "error" in r:
            rows.append(f"{r['benchmark']}  {r['measure']}  FAILED: {r['error']}")
            continue
        op = "<=" if r["better"] == "lower" else ">="
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        ref = "" if r["reference"] is None else f"{r['reference']:.3g} {r['unit']}"
        rows.append(
            f"{r['benchmark']}  {r['measure']}  {r['ours']:.3g} {r['unit']}  {ref}  {ratio}  "
            f"{op} {r['target']}  {'yes' if r['met'] else 'NO'}"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(f"{n}: bench/{s}" for n, (s, _) in BENCHMARKS.items()))
        return 0
    wanted = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in wanted if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    previous: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept = [r for r in previous.get("results", []) if r["benchmark"] not in wanted]
    when = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit(),
    }
    fresh: list[dict[str, Any]] = []
    for name in wanted:
        fresh += run_one(name, when)
    order = list(BENCHMARKS)
    results = sorted(kept + fresh, key=lambda r: order.index(r["benchmark"]))
    RESULTS.write_text(
        json.dumps({"machine": machine(), "results": results}, indent=2, ensure_ascii=False) + "\n"
    )
    print(table(results))
    print(f"written: {RESULTS.relative_to(ROOT)}")
    return 1 if any("error" in r for r in fresh) else 0


if __name__ == "__main__":
    raise SystemExit(main())
