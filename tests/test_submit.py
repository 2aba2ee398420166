"""Without Slurm: the sbatch script, the launch line, "complete" smalldata files, and the
producer against a stand-in ``sbatch`` on PATH and a real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from mpicube.cluster.complete import incomplete_reason, wait_until_complete
from mpicube.cluster.sbatch import DEFAULT_TEMPLATE, BatchJob, launch_command, render
from mpicube.errors import CubeError
from mpicube.synth import write_run
from tests.http_sink import Sink
from tests.test_failures import CONFIG
from tests.test_job import EXP

PRODUCER = str(Path(__file__).parents[1] / "producers" / "submit_cube.py")
URL = "http://127.0.0.1:9/counters?job=1&x=2"


def a_job(**changes) -> BatchJob:
    fields = dict(
        experiment="xpplx1234",
        run=7,
        cube_args=["--experiment", "xpplx1234", "--run", "7", "--indir", "/data/with space"],
        log_dir=Path("/logs"),
        partition="milano",
        account="lcls:xpplx1234",
        status_url=URL,
        arp_job_id="123",
    )
    return BatchJob(**{**fields, **changes})


def test_the_template_filled_is_a_valid_batch_script():
    script = render(DEFAULT_TEMPLATE.read_text(), a_job(launcher="srun"))
    assert "@{" not in script
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=cube_xpplx1234_r7",
        "#SBATCH --partition=milano",
        "#SBATCH --account=lcls:xpplx1234",
        "#SBATCH --ntasks=64",
        "#SBATCH --nodes=1-4",
        "#SBATCH --time=02:00:00",
        "#SBATCH --output=/logs/cube_xpplx1234_Run0007_%j.log",
    ]
    launch = f"srun --mpi=pmi2 {sys.executable} -u -m mpi4py -m mpicube run --experiment "
    assert launch + "xpplx1234 --run 7 --indir '/data/with space'" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_the_batch_script_exports_what_the_job_reports_with(tmp_path):
    """Run the filled script's environment lines in bash: the URL survives quoting."""
    script = render(DEFAULT_TEMPLATE.read_text(), a_job())
    exports = "\n".join(line for line in script.splitlines() if line.startswith("export"))
    shown = subprocess.run(
        ["bash", "-c", exports + '\necho "$EXPERIMENT|$RUN_NUM|$JID_UPDATE_COUNTERS|$ARP_JOB_ID"'],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shown.stdout == f"xpplx1234|7|{URL}|123\n"


def test_sbatch_values_must_be_single_words():
    with pytest.raises(CubeError, match="sbatch partition 'a b' must be one word"):
        render(DEFAULT_TEMPLATE.read_text(), a_job(partition="a b"))
    with pytest.raises(CubeError, match=r"unknown field @\{nope\}"):
        render("#!/bin/bash\n@{nope}\n", a_job())


def test_the_launcher_follows_the_mpi_that_mpi4py_uses(tmp_path):
    venv_python = str(Path(sys.executable))  # the test venv has the mpich wheel's mpiexec
    wheel = Path(sys.executable).parent / "mpiexec"
    assert launch_command("auto", venv_python) == f'{wheel} -n "${{SLURM_NTASKS}}"'
    site_python = str(tmp_path / "python")  # no mpiexec beside it: the site's MPI
    assert launch_command("auto", site_python) == 'mpirun -n "${SLURM_NTASKS}"'
    assert launch_command("srun", site_python) == "srun --mpi=pmi2"
    with pytest.raises(CubeError, match="unknown launcher 'qsub'"):
        launch_command("qsub", site_python)


WRITER = """
import sys, time, h5py
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = [1, 2, 3]
    f.flush()
    print("open", flush=True)
    sys.stdin.readline()
"""


def test_a_file_held_open_by_its_writer_is_not_complete(tmp_path):
    path = tmp_path / "run.h5"
    assert incomplete_reason(path, settle=0) == "does not exist"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline() == "open\n"
        reason = incomplete_reason(path, settle=0)
        assert reason is not None and reason.startswith("cannot be opened")
    finally:
        writer.communicate("\n", timeout=30)
    assert incomplete_reason(path, settle=0) is None
    assert incomplete_reason(path, settle=60).startswith("was modified")  # just written


def test_waiting_is_bounded_and_ends_when_the_file_is_complete(tmp_path):
    path = tmp_path / "run.h5"
    started = time.monotonic()
    with pytest.raises(CubeError, match=r"not complete after 0.5 s: does not exist"):
        wait_until_complete(path, timeout=0.5, poll=0.1)
    assert time.monotonic() - started < 2
    with h5py.File(path, "w") as f:
        f["x"] = [1]
    assert wait_until_complete(path, timeout=10, settle=0.3, poll=0.05) >= 0.2


FAKE_SBATCH = """#!/bin/sh
# stands in for sbatch: keeps its arguments and the script, answers like sbatch --parsable
echo "$@" > "$(dirname "$0")/args"
cp "$2" "$(dirname "$0")/script"
if [ -n "$FAIL" ]; then echo "sbatch: error: Invalid account or account/partition" >&2; exit 1; fi
echo "4242;cluster"
"""


@pytest.fixture()
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    indir = tmp_path / "smalldata"
    write_run(indir / f"{EXP}_Run0001.h5", n_events=20, detectors={"jf": "jungfrau-small"})
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return bin_dir, indir, config


def producer(bin_dir: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "EXPERIMENT": EXP,
        "RUN_NUM": "1",
        "ARP_JOB_ID": "arp-9",
        "JID_UPDATE_COUNTERS": url,
        **env,
    }
    return subprocess.run(
        [sys.executable, PRODUCER, "--settle", "0", *args],
        capture_output=True, text=True, env=full_env, timeout=60,
    )  # fmt: skip


def test_the_producer_submits_and_posts_submitted(fake_slurm, tmp_path):
    bin_dir, indir, config = fake_slurm
    outdir = tmp_path / "cube"
    with Sink() as sink:
        result = producer(bin_dir, sink.url, "--indir", str(indir), "--outdir", str(outdir),
                          "--config", str(config), "--force")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "4242\n"
    assert sink.bodies == [[{"key": "<b>Cube </b>", "value": "Submitted: Slurm job 4242"}]]
    kept = outdir / "logs" / f"cube_{EXP}_Run0001.sbatch"
    assert (bin_dir / "args").read_text() == f"--parsable {kept}\n"
    script = (bin_dir / "script").read_text()
    assert script == kept.read_text()
    assert f"#SBATCH --account=lcls:{EXP}" in script
    assert f"#SBATCH --output={outdir}/logs/cube_{EXP}_Run0001_%j.log" in script
    assert f"JID_UPDATE_COUNTERS={sink.url} ARP_JOB_ID=arp-9" in script
    assert (
        f"-m mpicube run --experiment {EXP} --run 1 --indir {indir} --outdir {outdir} "
        f"--config {config}" in script
    )
    assert "--force --summary-dir" in script


def test_the_producer_reports_an_incomplete_file_and_a_refused_job(fake_slurm, tmp_path):
    bin_dir, indir, config = fake_slurm
    common = ["--outdir", str(tmp_path / "cube"), "--config", str(config)]
    with Sink() as sink:
        missing = producer(bin_dir, sink.url, "--indir", str(tmp_path), "--wait", "0.3", *common)
        refused = producer(bin_dir, sink.url, "--indir", str(indir), *common, FAIL="1")
    assert missing.returncode == 1 and refused.returncode == 1
    path = tmp_path / f"{EXP}_Run0001.h5"
    why = f"smalldata file {path} not complete after 0.3 s: does not exist"
    assert missing.stderr == f"mpicube: error: {why}\n"
    reason = "sbatch failed: sbatch: error: Invalid account or account/partition"
    assert refused.stderr == f"mpicube: error: {reason}\n"
    assert sink.bodies == [
        [{"key": "<b>Cube </b>", "value": f"Failed: {why}"}],
        [{"key": "<b>Cube </b>", "value": f"Failed: {reason}"}],
    ]


def test_dry_run_prints_the_script_and_submits_nothing(fake_slurm, tmp_path):
    bin_dir, indir, config = fake_slurm
    result = producer(bin_dir, "", "--indir", str(indir), "--config", str(config),
                      "--dry-run", "--ntasks", "8", "--partition", "roma")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --ntasks=8\n#SBATCH --nodes=1-4" in result.stdout
    assert "#SBATCH --partition=roma" in result.stdout
    assert not (bin_dir / "args").exists()


COUNTING_SBATCH = """#!/bin/sh
# stands in for sbatch: one line per submission; job ids 100, 101, …
calls="$(dirname "$0")/calls"
echo "$2" >> "$calls"
echo $((99 + $(wc -l < "$calls")))
"""


def test_the_watcher_submits_each_complete_run_once(tmp_path):
    bin_dir, indir = tmp_path / "bin", tmp_path / "smalldata"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(COUNTING_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    for run in (3, 5):
        write_run(indir / f"{EXP}_Run{run:04d}.h5", n_events=30, detectors={})
    (indir / f"{EXP}_Run0009.h5.tmp").write_text("not a run")
    (indir / "otherexp_Run0004.h5").write_text("another experiment")
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(CONFIG)
    state = tmp_path / "state.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(indir / f"{EXP}_Run0007.h5")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "JID_UPDATE_COUNTERS": ""}
    command = [sys.executable, "-m", "mpicube", "watch", "--experiment", EXP, "--indir",
               str(indir), "--outdir", str(tmp_path / "cube"), "--config", str(config),
               "--state", str(state), "--settle", "0", "--once"]  # fmt: skip

    def look() -> list[str]:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        calls = bin_dir / "calls"
        return calls.read_text().splitlines() if calls.exists() else []

    try:
        assert writer.stdout.readline() == "open\n"
        assert [Path(c).name for c in look()] == [
            f"cube_{EXP}_Run0003.sbatch",
            f"cube_{EXP}_Run0005.sbatch",
        ]
        assert len(look()) == 2  # nothing new: each run once
    finally:
        writer.communicate("\n", timeout=30)
    assert Path(look()[-1]).name == f"cube_{EXP}_Run0007.sbatch"  # its writer is done
    assert json.loads(state.read_text()) == {
        f"{EXP}_Run0003.h5": "100",
        f"{EXP}_Run0005.h5": "101",
        f"{EXP}_Run0007.h5": "102",
    }
