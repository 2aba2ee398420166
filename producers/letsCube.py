#!/usr/bin/env python
"""The facility's familiar cube script: a thin launcher of ``mpicube run``.

    mpirun -n 64 python producers/letsCube.py --experiment xpplx1234 --run 7

Options are those of ``mpicube run --help``; ``EXPERIMENT`` and ``RUN_NUM`` are read
from the environment when absent. The hutch config is
``producers/cube_config_<hutch>.py`` beside this script.
"""

import sys

from mpicube.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
