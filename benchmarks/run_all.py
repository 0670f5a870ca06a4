"""Run the benchmarks one after another as subprocesses, so every table comes from one run on the same
machine: trainer_overhead, tracking_overhead, search_overhead, stage_startup, orchestration,
full_pipeline, serving (on the project full_pipeline just ran), gpu.
--quick and --results are passed on. Run: .venv/bin/python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import BENCH, parser

SCRIPTS = (
    "trainer_overhead",
    "tracking_overhead",
    "search_overhead",
    "stage_startup",
    "orchestration",
    "full_pipeline",
    "serving",
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
    ran = Path(tempfile.mkdtemp(prefix="dlops-run-all-")) / "full"  # full_pipeline's run, for serving
    try:
        for name in args.only.split(","):
            print(f"\n=== {name} ===", flush=True)
            started = time.perf_counter()
            extra = {"full_pipeline": ["--keep-at", str(ran)], "serving": ["--root", str(ran / "clone")]}
            if name == "serving" and (args.quick or not ran.exists()):
                summary.append("serving: skipped (it scores the champions of full_pipeline's whole run)")
                continue
            code = subprocess.run(
                [sys.executable, str(BENCH / f"{name}.py"), *forwarded, *extra.get(name, [])],
                cwd=BENCH.parent,
            ).returncode
            summary.append(f"{name}: exit {code}, {time.perf_counter() - started:.0f} s")
            if code != 0:
                failed.append(name)
    finally:
        shutil.rmtree(ran.parent, ignore_errors=True)
    print("\n" + "\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
