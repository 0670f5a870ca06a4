"""Run the overhead benchmarks one after another as subprocesses, so every table comes from one run on
the same machine: trainer_overhead, tracking_overhead, search_overhead, stage_startup, orchestration,
full_pipeline, gpu.
--quick and --results are passed on. Run: .venv/bin/python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time

from results import BENCH, parser

SCRIPTS = (
    "trainer_overhead",
    "tracking_overhead",
    "search_overhead",
    "stage_startup",
    "orchestration",
    "full_pipeline",
    "gpu",
)


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument(
        "--only", default=",".join(SCRIPTS), help="comma-separated subset of " + ",".join(SCRIPTS)
    )
    args = ap.parse_args()
    forwarded = ["--results", str(args.results.resolve()), *(["--quick"] if args.quick else [])]
    failed, summary = [], []
    for name in args.only.split(","):
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.run(
            [sys.executable, str(BENCH / f"{name}.py"), *forwarded], cwd=BENCH.parent
        ).returncode
        summary.append(f"{name}: exit {code}, {time.perf_counter() - started:.0f} s")
        if code != 0:
            failed.append(name)
    print("\n" + "\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
