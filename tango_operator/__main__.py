"""``python -m tango_operator``: the ``tango-operator`` command (``tango_operator.cli``)."""

from __future__ import annotations

import sys

from tango_operator.cli import main

sys.exit(main())
