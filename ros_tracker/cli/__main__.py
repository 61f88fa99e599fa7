"""``python -m ros_tracker.cli``: the ros-tracker command without the installed script."""

import sys

from ros_tracker.cli.main import main

sys.exit(main())
