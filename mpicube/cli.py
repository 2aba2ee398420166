"""Command line: ``mpicube [run] …`` (the cube job), ``check``, ``submit`` (a Slurm job),
``watch`` (a Slurm job per new run), ``synth``, ``demo``, ``show CUBE.h5``.

Argument parsing and dispatch only; the work is in :mod:`mpicube.job`,
:mod:`mpicube.cluster`, :mod:`mpicube.synth` and :mod:`mpicube.show`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mpicube.errors import CubeError

if TYPE_CHECKING:
    from mpicube.cluster.sbatch import BatchJob
    from mpicube.job import JobOptions

DEFAULT_DATA_ROOT = "/sdf/data/lcls/ds"
DEFAULT_PARTITION = "milano"
SUBCOMMANDS = ("run", "check", "submit", "watch", "synth", "demo", "show")


def main(argv: list[str] | None = None) -> int:
    """Run the command given by ``argv`` (default: sys.argv); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*SUBCOMMANDS, "-h", "--help"):
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpicube",
        description="Bin the shots of a run and sum fields and detector frames per bin into "
        "HDF5 cubes, in parallel with MPI: mpirun -n 64 mpicube --experiment EXP --run R",
    )
    sub = parser.add_subparsers(title="commands (run is the default)")
    _add_run(sub.add_parser("run", help="make the cubes of one run (the default command)"))
    _add_check(
        sub.add_parser(
            "check",
            help="plan a run without reading detector frames: events kept, bins, files, "
            "memory and time a job would need",
        )
    )
    _add_submit(
        sub.add_parser(
            "submit",
            help="wait for the run's smalldata file to be complete, submit its cube job to "
            "Slurm, print the job id (the run-end producer)",
        )
    )
    _add_watch(
        sub.add_parser(
            "watch",
            help="submit a cube job for every newly complete smalldata file of an experiment, "
            "once each (for sites without a run processor)",
        )
    )
    _add_synth(sub.add_parser("synth", help="write a synthetic smalldata run"))
    _add_demo(sub.add_parser("demo", help="make a synthetic run and cube it on 2 ranks"))
    _add_show(sub.add_parser("show", help="print a cube's bins, counts, datasets, provenance"))
    return parser


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--experiment",
        default=os.environ.get("EXPERIMENT"),
        help="experiment name, e.g. xpplx1234 (default: $EXPERIMENT)",
    )
    p.add_argument(
        "--run", type=int, default=_env_int("RUN_NUM"), help="run number (default: $RUN_NUM)"
    )
    p.add_argument(
        "--indir",
        type=Path,
        help="directory of <exp>_Run<NNNN>.h5 (default: <data-root>/<hutch>/<exp>/hdf5/smalldata)",
    )
    p.add_argument("--outdir", type=Path, help="where cubes are written (default: <indir>/cube)")
    p.add_argument(
        "--config",
        type=Path,
        help="cube config file (default: producers/cube_config_<hutch>.py, hutch = the first "
        "3 letters of the experiment)",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=Path(os.environ.get("MPICUBE_DATA_ROOT", DEFAULT_DATA_ROOT)),
        help=f"facility data root (default: $MPICUBE_DATA_ROOT or {DEFAULT_DATA_ROOT})",
    )
    p.add_argument("--force", action="store_true", help="replace cubes that exist already")
    p.add_argument(
        "--memory-budget",
        type=float,
        default=2.0,
        metavar="GB",
        help="detector accumulator memory per rank in GB; more bins than fit are done in "
        "blocks (default: 2)",
    )
    p.add_argument(
        "--summary-dir",
        type=Path,
        help="where the logbook summary page goes (default: <outdir>/summary)",
    )
    p.add_argument("--no-summary", action="store_true", help="write no summary page")
    p.add_argument(
        "--frames",
        default="h5",
        metavar="h5|xtc2[:DIR]",
        help="where detector frames come from: h5, the smalldata file's <det>/raw (default), "
        "or xtc2, the run's XTC2 files read with psana from DIR (default: "
        "<data-root>/<hutch>/<exp>/xtc)",
    )
    p.set_defaults(handler=_run)


def _add_check(p: argparse.ArgumentParser) -> None:
    _add_run(p)
    p.add_argument(
        "--ranks",
        type=int,
        help="ranks to estimate memory and time for (default: as many as check runs on)",
    )
    p.set_defaults(handler=_check)


def _add_submit(p: argparse.ArgumentParser) -> None:
    from mpicube.cluster.sbatch import DEFAULT_TEMPLATE, LAUNCHERS

    _add_run(p)
    slurm = p.add_argument_group("Slurm job")
    slurm.add_argument(
        "--partition",
        default=os.environ.get("MPICUBE_PARTITION", DEFAULT_PARTITION),
        help=f"partition (default: $MPICUBE_PARTITION or {DEFAULT_PARTITION})",
    )
    slurm.add_argument("--account", help="account (default: lcls:<experiment>)")
    slurm.add_argument("--ntasks", type=int, default=64, help="MPI ranks (default: 64)")
    slurm.add_argument("--nodes", default="1-4", help="nodes, N or MIN-MAX (default: 1-4)")
    slurm.add_argument("--time", default="02:00:00", help="time limit (default: 02:00:00)")
    slurm.add_argument(
        "--log-dir",
        type=Path,
        help="where the job's log cube_<exp>_Run<NNNN>_<jobid>.log and its sbatch script go "
        "(default: <outdir>/logs)",
    )
    slurm.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="auto",
        help="how ranks start: mpiexec (the one beside --python, i.e. the mpich wheel's), "
        "mpirun (the site's), srun (srun --mpi=pmi2); auto: mpiexec if the mpich wheel is "
        "installed, else mpirun (default: auto)",
    )
    slurm.add_argument(
        "--python", default=sys.executable, help="Python of the job (default: this one)"
    )
    slurm.add_argument(
        "--program",
        default="-m mpicube",
        help="what each rank runs after 'python -u -m mpi4py', followed by 'run' and the run "
        "options (default: -m mpicube)",
    )
    slurm.add_argument(
        "--template",
        type=Path,
        default=DEFAULT_TEMPLATE,
        help="sbatch template (default: %(default)s)",
    )
    slurm.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the smalldata file to be complete (default: 600)",
    )
    slurm.add_argument(
        "--settle",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="complete = opens with HDF5 file locking and unmodified for this long (default: 10)",
    )
    slurm.add_argument(
        "--dry-run", action="store_true", help="print the sbatch script, submit nothing"
    )
    p.set_defaults(handler=_submit)


def _add_watch(p: argparse.ArgumentParser) -> None:
    _add_submit(p)
    watcher = p.add_argument_group("watcher (--run is not used: every run of --indir is)")
    watcher.add_argument(
        "--state",
        type=Path,
        help="JSON record of the files handled (default: <log-dir>/watch_<exp>.json)",
    )
    watcher.add_argument(
        "--interval", type=float, default=30.0, help="seconds between looks (default: 30)"
    )
    watcher.add_argument("--once", action="store_true", help="look once and exit")
    p.set_defaults(handler=_watch)


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", default="xpplx1234", help="experiment name (default: xpplx1234)")
    p.add_argument("--run", type=int, default=1, help="run number (default: 1)")
    p.add_argument("--outdir", type=Path, default=Path("."), help="where the file is written")
    p.add_argument("--events", type=int, default=1000, help="number of events (default: 1000)")
    p.add_argument(
        "--scan",
        choices=("delay", "step", "none"),
        default="delay",
        help="scan type (default: delay)",
    )
    p.add_argument(
        "--detector",
        action="append",
        metavar="NAME[:MODEL]",
        help="area detector to include, repeatable (default: jungfrau1M); MODEL is one of the "
        "synthetic models (jungfrau1M, jungfrau4M, jungfrau-small, epix10k2M, epix10ka-small, "
        "epix100, epix100-small)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(handler=_synth)


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("mpicube-demo"),
        help="where the synthetic run and the cubes go (default: ./mpicube-demo)",
    )
    p.add_argument("--events", type=int, default=1000, help="number of events (default: 1000)")
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks (default: 2)")
    p.set_defaults(handler=_demo)


def _add_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("cube", type=Path, help="a cube file (Cube_*.h5)")
    p.add_argument("--config-text", action="store_true", help="also print the config's text")
    p.set_defaults(handler=_show)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


def _run(args: argparse.Namespace) -> int:
    from mpicube.job import run_job
    from mpicube.parallel import Parallel, abort_on_error
    from mpicube.report.status import failed_value, post_status

    par = Parallel()
    _log_setup(par.is_root)

    def report_crash(exc: BaseException) -> None:  # any rank: the job is about to abort
        post_status(failed_value(f"rank {par.rank}: {type(exc).__name__}: {exc}"))

    try:
        abort_on_error(lambda: run_job(_job_options(args), par), before_abort=report_crash)
    except CubeError as exc:
        if par.is_root:
            print(f"mpicube: error: {exc}", file=sys.stderr)
            post_status(failed_value(str(exc)))
        return 1
    if par.is_root:
        post_status("Done")
    return 0


def _check(args: argparse.Namespace) -> int:
    from mpicube.parallel import Parallel
    from mpicube.report.check import check_run

    par = Parallel()
    _log_setup(par.is_root)
    try:
        options = _job_options(args)
        lines, ok = par.from_root(lambda: check_run(options, args.ranks or par.size))
    except CubeError as exc:
        if par.is_root:
            print(f"mpicube: error: {exc}", file=sys.stderr)
        return 1
    if par.is_root:
        print("\n".join(lines))
    return 0 if ok else 1


def _submit(args: argparse.Namespace) -> int:
    from mpicube.cluster.producer import submit_run
    from mpicube.cluster.sbatch import render
    from mpicube.report.status import ENV_URL, failed_value, post_status

    status_url = os.environ.get(ENV_URL, "")
    try:
        job, options = _batch_job(args)
        if args.dry_run:
            print(render(args.template.read_text(), job), end="")
            return 0
        job_id = submit_run(job, options.input_path, args.template, args.wait, args.settle)
    except (CubeError, OSError) as exc:
        print(f"mpicube: error: {exc}", file=sys.stderr)
        post_status(failed_value(str(exc)), url=status_url)
        return 1
    print(job_id)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from mpicube.cluster.producer import submit_run
    from mpicube.cluster.watch import watch, watch_once

    _log_setup(True)
    try:
        any_run, options = _batch_job(argparse.Namespace(**{**vars(args), "run": 0}))
        directory = options.input_path.parent
        state = args.state or any_run.log_dir / f"watch_{options.experiment}.json"
        state.parent.mkdir(parents=True, exist_ok=True)

        def submit_one(run: int) -> str:
            job, options = _batch_job(argparse.Namespace(**{**vars(args), "run": run}))
            return submit_run(job, options.input_path, args.template, 0.0, args.settle)

        if args.once:
            watch_once(directory, options.experiment, state, submit_one, args.settle)
        else:
            watch(directory, options.experiment, state, submit_one, args.settle, args.interval)
    except CubeError as exc:
        print(f"mpicube: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _batch_job(args: argparse.Namespace) -> tuple[BatchJob, JobOptions]:
    """Return the Slurm job of ``submit`` arguments and the cube job's options."""
    import shlex

    from mpicube.cluster.sbatch import BatchJob
    from mpicube.report.status import ENV_URL

    options = _job_options(args)
    job = BatchJob(
        experiment=options.experiment,
        run=options.run,
        cube_args=_cube_args(args, options),
        log_dir=(args.log_dir or options.outdir / "logs").resolve(),
        partition=args.partition,
        account=args.account or f"lcls:{options.experiment}",
        ntasks=args.ntasks,
        nodes=args.nodes,
        time=args.time,
        launcher=args.launcher,
        python=args.python,
        program=shlex.split(args.program),
        status_url=os.environ.get(ENV_URL, ""),
        arp_job_id=os.environ.get("ARP_JOB_ID", ""),
    )
    return job, options


def _cube_args(args: argparse.Namespace, options: JobOptions) -> list[str]:
    """Return the ``mpicube run`` options of a submitted job, paths made absolute."""
    cube = [
        "--experiment", options.experiment, "--run", str(options.run),
        "--indir", str(options.input_path.parent.resolve()),
        "--outdir", str(options.outdir.resolve()),
        "--config", str(options.config_path.resolve()),
        "--data-root", str(args.data_root.resolve()),
        "--memory-budget", str(args.memory_budget), "--frames", args.frames,
    ]  # fmt: skip
    if args.force:
        cube.append("--force")
    if options.summary_dir is None:
        cube.append("--no-summary")
    else:
        cube += ["--summary-dir", str(options.summary_dir.resolve())]
    return cube


def _log_setup(is_root: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if is_root else logging.WARNING,
        format="%(message)s",
        stream=sys.stdout,
    )


def _job_options(args: argparse.Namespace) -> JobOptions:
    """Return the job options of ``run`` and ``check`` arguments, defaults resolved."""
    from mpicube.job import JobOptions
    from mpicube.smalldata import run_file_name
    from mpicube.sources import parse_frames_option

    if not args.experiment or args.run is None:
        raise CubeError("give --experiment and --run (or set EXPERIMENT and RUN_NUM)")
    hutch = args.experiment[:3].lower()
    exp_dir = args.data_root / hutch / args.experiment
    indir = args.indir or exp_dir / "hdf5" / "smalldata"
    outdir = args.outdir or indir / "cube"
    return JobOptions(
        experiment=args.experiment,
        run=args.run,
        input_path=indir / run_file_name(args.experiment, args.run),
        outdir=outdir,
        config_path=args.config or default_config(hutch),
        force=args.force,
        memory_budget=int(args.memory_budget * 2**30),
        summary_dir=None if args.no_summary else args.summary_dir or outdir / "summary",
        frames=parse_frames_option(args.frames, exp_dir / "xtc"),
    )


def default_config(hutch: str) -> Path:
    """Return ``producers/cube_config_<hutch>.py`` from the working directory or the source tree."""
    name = f"cube_config_{hutch}.py"
    candidates = [Path.cwd() / "producers" / name, Path(__file__).parents[1] / "producers" / name]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise CubeError(
        f"no config {name} in {' or '.join(str(c.parent) for c in candidates)}: use --config"
    )


def _synth(args: argparse.Namespace) -> int:
    from mpicube.synth import run_file_name, write_run

    detectors = {}
    for spec in args.detector or ["jungfrau1M"]:
        name, _, model = spec.partition(":")
        detectors[name] = model or name
    path = args.outdir / run_file_name(args.experiment, args.run)
    write_run(path, n_events=args.events, scan=args.scan, detectors=detectors, seed=args.seed)
    print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mpicube.synth import run_file_name, write_run

    experiment, run = "xpplx1234", 1
    indir, outdir = args.workdir / "smalldata", args.workdir / "cube"
    path = indir / run_file_name(experiment, run)
    print(f"writing a synthetic delay scan of {args.events} Jungfrau 1M events to {path}")
    write_run(path, n_events=args.events, scan="delay")
    command = [
        _mpiexec(),
        "-n",
        str(args.ranks),
        sys.executable,
        "-m",
        "mpicube",
        "run",
        "--experiment",
        experiment,
        "--run",
        str(run),
        "--indir",
        str(indir),
        "--outdir",
        str(outdir),
        "--config",
        str(default_config("xpp")),
        "--force",
    ]
    print("running:", " ".join(command), flush=True)
    code = subprocess.call(command)
    if code == 0:
        print(f"cubes are in {outdir.resolve()}:")
        for cube in sorted(outdir.glob("Cube_*.h5")):
            print(f"  {cube.name}")
    return code


def _show(args: argparse.Namespace) -> int:
    from mpicube.show import describe

    try:
        print(describe(args.cube, args.config_text))
    except CubeError as exc:
        print(f"mpicube: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _mpiexec() -> str:
    """Return the mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        raise SystemExit("mpicube: error: no mpiexec found: pip install 'mpicube[mpich]'")
    return found
