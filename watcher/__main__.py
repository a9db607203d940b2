"""``python -m watcher``."""

import sys

from watcher.main import main

sys.exit(main())
