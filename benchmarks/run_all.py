"""All of mpicube's speed and memory measurements, side by side in one run.

    python benchmarks/run_all.py [--workdir /tmp] [--out benchmarks/results] [--quick]

Writes its own synthetic runs (Jungfrau 1M delay scan, contiguous and bitshuffle-LZ4;
Jungfrau 4M; a 100k-event smalldata file), reads each once so the page cache is warm,
then measures, repeating the timed steps interleaved and keeping the best of each:
the floor, mpicube 1 rank end to end, a straightforward numpy pipeline, the peers
(xarray, flox), scaling on 1/2/4 ranks with the merge + write share, peak memory per rank
at 10/100/1000 bins, and the start-up time. Prints the table and writes ``results.json``
(raw numbers) and ``scaling.png`` into ``--out``. The synthetic runs are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import inprocess
import machine
from jobs import EXPERIMENT, JobResult, run_job, write_config

from mpicube.synth import run_file_name, write_run

HERE = Path(__file__).resolve().parent
PRODUCTION_EVENTS = 100_000  # the 100k-event run the merge + write share is projected to
THRES = 6.5
N_1M = 6000  # events of the 1M delay scan (12.6 GB), fewer if the page cache cannot hold it
FRAME_BYTES_1M = 2 * 2**20


def main() -> None:
    """Run every measurement; print the table, write results.json and scaling.png."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None, help="where runs are written")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="small runs (checks the script)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="mpicube-bench-") as tmp:
        results = measure(Path(tmp), scale, args.repeats)
    results["goals"] = goals(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "scaling.png")
    print(table(results))


def _run(work: Path, number: int, n_events: int, **kwargs: object) -> Path:
    """Write a synthetic run, read it once (warm page cache) and return its path."""
    started = time.perf_counter()
    path = write_run(work / run_file_name(EXPERIMENT, number), n_events=n_events, **kwargs)
    with open(path, "rb") as fh:
        while fh.read(64 * 2**20):
            pass
    print(f"wrote {path.name}: {n_events} events, {path.stat().st_size / 1e9:.1f} GB "
          f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return path


def _best(runs: list[JobResult]) -> JobResult:
    return max(runs, key=lambda r: r.rate)


def measure(work: Path, scale: float, repeats: int) -> dict:
    """Return every measurement (raw numbers) made on synthetic runs written in ``work``.

    The 4M and compressed runs are measured and deleted first, so that the page cache
    holds the large 1M run alone while the ratios are measured.
    """
    n1m = min(int(N_1M * scale), _events_in_page_cache(FRAME_BYTES_1M))
    n4m = int(400 * scale)
    j1 = {"jungfrau1M": "jungfrau1M"}
    j4 = {"jungfrau4M": "jungfrau4M"}
    cfg1m = write_config(work, "jungfrau1M", 100)
    cfg4m = write_config(work, "jungfrau4M", 100)
    out = work / "cube"
    r: dict = {"events": {"1M": n1m, "1M bitshuffle-lz4": n1m // 6, "4M": n4m}, "bins": 100}

    run1m_lz4 = _run(work, 2, n1m // 6, detectors=j1, compression="bitshuffle-lz4")
    run4m = _run(work, 3, n4m, detectors=j4, raw_layout="contiguous")
    lz4, four = [], []
    for i in range(repeats):
        print(f"4M and bitshuffle-LZ4, repeat {i + 1}/{repeats}", flush=True)
        lz4.append(run_job(run1m_lz4, cfg1m, 1, out))
        four.append(run_job(run4m, cfg4m, 1, out))
    run1m_lz4.unlink()
    run4m.unlink()
    r["job_1M_lz4"] = [asdict(j) | {"rate": j.rate} for j in lz4]
    r["job_4M"] = [asdict(j) | {"rate": j.rate} for j in four]

    run1m = _run(work, 1, n1m, detectors=j1, raw_layout="contiguous")
    plan = inprocess.load_plan(cfg1m, EXPERIMENT, 1, run1m)
    floor, jobs = [], {1: [], 2: [], 4: []}
    for i in range(repeats):  # interleaved: the machine is shared, noise hits all alike
        print(f"1M, repeat {i + 1}/{repeats}", flush=True)
        floor.append(inprocess.floor_rate(run1m, "jungfrau1M"))
        for ranks in (1, 2, 4):
            jobs[ranks].append(run_job(run1m, cfg1m, ranks, out))
    r["floor_events_per_s"] = floor
    r["jobs_1M"] = {str(k): [asdict(j) | {"rate": j.rate} for j in v] for k, v in jobs.items()}

    n_np = max(5, int(40 * scale))
    r["numpy_events_per_s"] = [
        inprocess.numpy_rate(run1m, "jungfrau1M", plan, n_np, THRES) for _ in range(2)
    ]
    frames, delay = inprocess.calibrated_frames(run1m, "jungfrau1M", plan, int(300 * scale), THRES)
    r["xarray_events_per_s"], r["flox_events_per_s"] = [], []
    for _ in range(repeats):
        r["xarray_events_per_s"].append(inprocess.xarray_rate(frames, delay, plan.bins.edges))
        r["flox_events_per_s"].append(inprocess.flox_rate(frames, delay, plan.bins.edges))
    del frames
    run1m.unlink()

    r["machine"] = {
        "touch_gb_per_s": [machine.touch_gb_per_s() for _ in range(repeats)],
        "cube_write_s": {
            str(n): [machine.cube_write_seconds(work, 100, n) for _ in range(repeats)]
            for n in (1, 2)
        },
    }
    r["memory"] = memory(work, scale, out)
    r["startup"] = startup(work, out)
    best1 = _best(jobs[1])
    best2 = _best(jobs[2])
    r["summary"] = {
        "floor": max(floor),
        "mpicube_1rank": best1.rate,
        "mpicube_1rank_accumulate": best1.frames
        / (best1.job - best1.phases["merge"] - best1.phases["write"]),
        "mpicube_2ranks": best2.rate,
        "detectors_2_over_1": min(j.phases["detectors"] for j in jobs[1])
        / min(j.phases["detectors"] for j in jobs[2]),
        "mpicube_4ranks": _best(jobs[4]).rate,
        "mpicube_1rank_lz4": _best(lz4).rate,
        "mpicube_1rank_4M": _best(four).rate,
        "numpy": max(r["numpy_events_per_s"]),
        "xarray": max(r["xarray_events_per_s"]),
        "flox": max(r["flox_events_per_s"]),
        "share_1rank": best1.merge_write_share,
        "share_2ranks": best2.merge_write_share,
        "share_2ranks_100k": _projected_share(best2, PRODUCTION_EVENTS),
        "merge_2ranks_s": best2.phases["merge"],
        "write_2ranks_s": best2.phases["write"],
        "startup_s": min(s["first_frames_s"] for s in r["startup"]),
        "rate_spread": {
            str(k): [min(j.rate for j in v), max(j.rate for j in v)] for k, v in jobs.items()
        },
    }
    return r


def _events_in_page_cache(frame_bytes: int) -> int:
    """Return how many frames fit in 55% of the memory available now (the rest is for the
    jobs, the peers' frames and the cubes), so the run stays in the page cache."""
    with open("/proc/meminfo") as fh:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    return int(0.55 * info["MemAvailable"] / frame_bytes)


def _projected_share(job: JobResult, n_events: int) -> float:
    """Return the merge + write share of a run of ``n_events`` at this job's rate: the
    merge and the write cost the same for 100 bins whatever the number of events."""
    fixed = job.phases["merge"] + job.phases["write"]
    work = job.job - fixed
    return fixed / (fixed + work * n_events / job.frames)


def memory(work: Path, scale: float, out: Path) -> list[dict]:
    """Return peak RSS per rank (2 ranks, 1 GB budget) at 10/100/1000 bins, 1M and 4M."""
    rows = []
    for det, model, n in (("jungfrau1M", "jungfrau1M", 300), ("jungfrau4M", "jungfrau4M", 120)):
        path = _run(work, 10, max(20, int(n * scale)), detectors={det: model},
                    raw_layout="contiguous")  # fmt: skip
        for n_bins in (10, 100, 1000):
            job = run_job(path, write_config(work, det, n_bins), 2, out, budget_gb=1.0)
            rows.append({"detector": det, "bins": n_bins, "peak_gb": job.peak_gb})
        path.unlink()
    return rows


def startup(work: Path, out: Path) -> list[dict]:
    """Return the start-up of a 100k-event smalldata file (small Jungfrau) on 2 ranks:
    seconds from launching mpiexec to rank 0's first calibrated frames, best of 3."""
    path = _run(work, 20, PRODUCTION_EVENTS, detectors={"jungfrau1M": "jungfrau-small"})
    config = write_config(work, "jungfrau1M", 100)
    runs = [run_job(path, config, 2, out) for _ in range(3)]
    path.unlink()
    return [{"first_frames_s": j.first_frames, "plan_s": j.phases["plan"]} for j in runs]


def goals(r: dict) -> list[dict]:
    """Return each goal of issue 5 with its measured value and whether it is met."""
    s = r["summary"]
    peers = max(s["xarray"], s["flox"])
    peaks_4m = [max(m["peak_gb"]) for m in r["memory"] if m["detector"] == "jungfrau4M"]
    rows = [
        ("1 rank end to end / floor", s["mpicube_1rank"] / s["floor"], ">= 0.15", 0.15),
        ("mpicube / straightforward numpy", s["mpicube_1rank"] / s["numpy"], ">= 8", 8.0),
        ("mpicube end to end / best peer", s["mpicube_1rank"] / peers, ">= 5", 5.0),
        ("2 ranks / 1 rank", s["mpicube_2ranks"] / s["mpicube_1rank"], ">= 1.8", 1.8),
    ]
    result = [{"measure": m, "value": v, "goal": g, "met": v >= t} for m, v, g, t in rows]
    result.append({"measure": "merge + write share, 100 bins, 2 ranks", "value": s["share_2ranks"],
                   "goal": "<= 0.10", "met": s["share_2ranks"] <= 0.10})  # fmt: skip
    result.append({"measure": "  same, projected to a 100k-event run",
                   "value": s["share_2ranks_100k"], "goal": "<= 0.10",
                   "met": s["share_2ranks_100k"] <= 0.10})  # fmt: skip
    # 10 bins do not fill the 1 GB budget; from 100 to 1000 bins (both past it) the
    # accumulators would grow 10x without the budget: flat means less than 25 % here.
    flat = peaks_4m[2] <= 1.25 * peaks_4m[1] and max(peaks_4m) < 1.0 + 2.0
    result.append({"measure": "peak RSS per rank, 4M, 1000 bins (GB)",
                   "value": peaks_4m[2], "goal": "1 GB budget + < 2 GB, 100->1000 bins +<25%",
                   "met": flat})  # fmt: skip
    result.append({"measure": "start-up, 100k events (s)", "value": s["startup_s"],
                   "goal": "<= 3", "met": s["startup_s"] <= 3.0})  # fmt: skip
    return result


def table(r: dict) -> str:
    """Return the benchmark's table (rates, then goals) as text."""
    s = r["summary"]
    lines = [
        f"Jungfrau 1M delay scan, {r['events']['1M']} events, 100 bins, warm page cache",
        f"{'measure':<46} {'events/s':>10}",
        f"{'floor: readinto a reused buffer':<46} {s['floor']:>10.0f}",
        f"{'mpicube 1 rank, end to end':<46} {s['mpicube_1rank']:>10.0f}",
        f"{'  same, without the merge and the write':<46} {s['mpicube_1rank_accumulate']:>10.0f}",
        f"{'mpicube 2 ranks':<46} {s['mpicube_2ranks']:>10.0f}",
        f"{'mpicube 4 ranks (oversubscribed)':<46} {s['mpicube_4ranks']:>10.0f}",
        f"{'mpicube 1 rank, bitshuffle-LZ4 input':<46} {s['mpicube_1rank_lz4']:>10.0f}",
        f"{'mpicube 1 rank, Jungfrau 4M':<46} {s['mpicube_1rank_4M']:>10.0f}",
        f"{'straightforward numpy (per event, h5py)':<46} {s['numpy']:>10.1f}",
        f"{'xarray groupby_bins().sum(), calibrated':<46} {s['xarray']:>10.0f}",
        f"{'flox groupby_reduce, calibrated':<46} {s['flox']:>10.0f}",
        "",
        f"{'goal':<46} {'measured':>10}  {'target':<28} met",
    ]
    for g in r["goals"]:
        lines.append(f"{g['measure']:<46} {g['value']:>10.3f}  {g['goal']:<28} "
                     f"{'yes' if g['met'] else 'NO'}")  # fmt: skip
    lines.append("")
    lines.append("peak RSS per rank (GB), 2 ranks, 1 GB budget:")
    for m in r["memory"]:
        lines.append(f"  {m['detector']:<11} {m['bins']:>5} bins: "
                     + " ".join(f"{x:.2f}" for x in m["peak_gb"]))  # fmt: skip
    lines.append(
        f"2 ranks: merge {s['merge_2ranks_s']:.2f} s, write {s['write_2ranks_s']:.2f} s; "
        f"detectors phase alone scales {s['detectors_2_over_1']:.2f}x"
    )
    m = r["machine"]
    touch = max(m["touch_gb_per_s"], key=lambda t: t["first"])
    w1, w2 = min(m["cube_write_s"]["1"]), min(m["cube_write_s"]["2"])
    lines.append(
        f"this machine: first touch of new memory {touch['first']:.2f} GB/s "
        f"(reused memory {touch['reused']:.2f} GB/s); one 0.8 GB cube into the page cache "
        f"{w1:.2f} s by 1 writer, {w2:.2f} s by 2 writers at once"
    )
    spread = s["rate_spread"]
    noise = ", ".join(f"{k} rank(s) {lo:.0f}-{hi:.0f}" for k, (lo, hi) in spread.items())
    lines.append(f"noise, mpicube events/s min-max over repeats: {noise}")
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    """Write the scaling plot: events/s per rank count, with the merge + write share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jobs = r["jobs_1M"]
    ranks = [int(k) for k in jobs]
    rates = [max(j["rate"] for j in jobs[str(k)]) for k in ranks]
    merges = [max(jobs[str(k)], key=lambda j: j["rate"])["phases"]["merge"] for k in ranks]
    writes = [max(jobs[str(k)], key=lambda j: j["rate"])["phases"]["write"] for k in ranks]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax.plot(ranks, rates, "o-", label="mpicube")
    ax.plot(ranks, [rates[0] * min(k, 2) for k in ranks], "k:", label="ideal on 2 cores")
    ax.axhline(r["summary"]["floor"], color="grey", ls="--", label="floor (read only)")
    ax.set_xlabel("ranks (4: oversubscribed)")
    ax.set_ylabel("events/s")
    ax.set_yscale("log")
    ax.set_xticks(ranks)
    ax.legend(fontsize=8)
    ax2.bar([str(k) for k in ranks], merges, label="merge (Reduce)")
    ax2.bar([str(k) for k in ranks], writes, bottom=merges, label="write")
    ax2.set_xlabel("ranks")
    ax2.set_ylabel("seconds (100 bins, Jungfrau 1M)")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Jungfrau 1M, {r['events']['1M']} events, 100 bins (shared 2-core machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
