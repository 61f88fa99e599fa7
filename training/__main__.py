"""``python -m training --config FILE [key=value ...]`` (torchrun: ``torchrun ... -m training``)."""

import sys

from training.cli import main

if __name__ == "__main__":  # loader workers are spawned: importing this must not train
    sys.exit(main())
