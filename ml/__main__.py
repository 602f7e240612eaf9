"""``python -m ml``: see :mod:`ml.cli`."""

import sys

from ml.cli import main

sys.exit(main())
