#!/usr/bin/env python
"""The run-end producer the facility's run processor calls when a run ends.

    python producers/submit_cube.py [mpicube submit options]

Reads ``EXPERIMENT``, ``RUN_NUM``, ``ARP_JOB_ID`` and ``JID_UPDATE_COUNTERS`` from the
environment, waits (bounded) for the run's smalldata file to be complete, submits the
cube job (``slurm/cube.sbatch``, the hutch config ``producers/cube_config_<hutch>.py``),
prints the Slurm job id and reports ``Submitted``; the job reports ``Done`` or ``Failed``.
For a past run, give ``--experiment`` and ``--run``. Options: ``mpicube submit --help``.
"""

import sys

from mpicube.cli import main

if __name__ == "__main__":
    sys.exit(main(["submit", *sys.argv[1:]]))
