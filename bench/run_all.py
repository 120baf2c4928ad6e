"""``make bench``: run every ``bench/bench_*.py`` in turn and collect their tables.

Each benchmark compares against its own baseline in the same run and prints
markdown; this runner only sequences them (they share two CPU cores, so
running them in parallel would distort each other's timings) and writes the
combined output to ``bench/results/latest.md`` for the README.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.md"


def machine_description() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = f"{names[0]} ×{len(names)}" if names else cpu
    return f"{platform.system()} {platform.machine()}, {cpu}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("only", nargs="*", help="benchmark names to run (e.g. index models); default all")
    args = parser.parse_args()
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    sections = [f"Machine: {machine_description()}\n"]
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        print(result.stdout, end="")
        if result.returncode != 0:
            failed.append(script.name)
            print(result.stderr[-4000:], file=sys.stderr)
        sections.append(f"## {script.stem} ({time.perf_counter() - started:.0f} s)\n\n{result.stdout}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(sections), encoding="utf-8")
    print(f"tables written to {RESULTS}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
