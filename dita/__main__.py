"""``python -m dita``: the ``dita`` command."""

import sys

from dita.cli import main

sys.exit(main())
