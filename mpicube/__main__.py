"""``python -m mpicube``: the same as the ``mpicube`` command."""

import sys

from mpicube.cli import main

sys.exit(main())
