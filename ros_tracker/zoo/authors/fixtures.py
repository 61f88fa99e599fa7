"""Where the parity fixtures are: the authors' weights, crops and outputs (about 80 MB).

They stay outside the repository: ``$ROS_TRACKER_PARITY_DIR``, or ``shared/parity`` next to
the source checkout or one of its parent folders. The parity tests, ``tools/parity_report.py``
and ``bench/authors_gpu.py`` read them.
"""

from __future__ import annotations

import os
from typing import Optional

# zoo entry -> fixture folder
FOLDERS = {"hit_tiny": "HiT-Tiny", "hcat": "HCAT-R18-N2", "mixformerv2_s": "MixFormerV2-S"}
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def parity_root() -> Optional[str]:
    """The fixtures' folder, or None where there is none."""
    configured = os.environ.get("ROS_TRACKER_PARITY_DIR")
    if configured:
        return configured if os.path.isdir(configured) else None
    folder = os.path.abspath(CHECKOUT)
    while True:
        candidate = os.path.join(folder, "shared", "parity")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
