"""``python -m alexnet_utils``: the instructor's command line (see alexnet_utils.course.cli)."""

import sys

from .course.cli import main

if __name__ == "__main__":
    sys.exit(main())
