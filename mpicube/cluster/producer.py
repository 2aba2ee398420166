"""The run-end producer: wait for the run's smalldata file, submit its cube job, report.

The facility's run processor calls it with ``EXPERIMENT``, ``RUN_NUM``, ``ARP_JOB_ID`` and
``JID_UPDATE_COUNTERS`` set; it POSTs ``Submitted: Slurm job <id>`` and the job itself
POSTs ``Done`` or ``Failed: <reason>`` at its end.
"""

from __future__ import annotations

from pathlib import Path

from mpicube.cluster.complete import wait_until_complete
from mpicube.cluster.sbatch import BatchJob, render, submit
from mpicube.report.status import post_status


def submit_run(job: BatchJob, smalldata: Path, template: Path, wait: float, settle: float) -> str:
    """Wait (at most ``wait`` s) for ``smalldata`` to be complete, write the job's sbatch
    script beside its log, submit it and report ``Submitted``; return the Slurm job id.

    Raises CubeError when the file stays incomplete or sbatch fails.
    """
    wait_until_complete(smalldata, timeout=wait, settle=settle)
    script = render(template.read_text(), job)
    job.log_dir.mkdir(parents=True, exist_ok=True)  # sbatch does not create it
    script_path = job.log_dir / f"cube_{job.experiment}_Run{job.run:04d}.sbatch"
    script_path.write_text(script)
    job_id = submit(script_path)
    post_status(f"Submitted: Slurm job {job_id}", url=job.status_url)
    return job_id
