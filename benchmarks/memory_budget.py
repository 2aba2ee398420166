"""Peak memory per rank of a Jungfrau 4M cube with the XPP config's 274 delay bins.

    python benchmarks/memory_budget.py [--events 400] [--ranks 4] [--budget 2]

Writes a synthetic 4M delay scan, cubes it with the seed's XPP config (laser on/off,
filter1 and custom: four cubes) under ``mpiexec``, and prints the peak resident memory
of every rank. The accumulators alone would
need (populated bins x 4 cubes x 33.5 MB) without the budget.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from jobs import run_job

from mpicube.synth import write_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the benchmark and print the peak memory of every rank."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--budget", type=float, default=2.0, help="GB per rank")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        run = write_run(
            work / "xpplx1234_Run0001.h5",
            n_events=args.events,
            detectors={"jungfrau4M": "jungfrau4M"},
        )
        config = work / "cube_config_xpp.py"
        text = (ROOT / "producers" / "cube_config_xpp.py").read_text()
        config.write_text(text.replace("'jungfrau1M'", "'jungfrau4M'"))
        job = run_job(run, config, args.ranks, work / "cube", budget_gb=args.budget)
        print(
            f"{job.frames} frames summed on {job.ranks} ranks in {job.job:.1f} s, "
            f"budget {args.budget:g} GB; peak memory per rank "
            + " ".join(f"{gb:.2f}" for gb in job.peak_gb)
            + " GB"
        )


if __name__ == "__main__":
    main()
