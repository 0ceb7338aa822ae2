"""``python -m attnviz``: see :mod:`attnviz.cli`."""

import sys

from .cli import main

sys.exit(main())
