"""``python -m ros_tracker.cli``: the ros-tracker command without the installed script."""

from __future__ import annotations

import sys

from ros_tracker.cli.main import main

sys.exit(main())
