"""``python -m reconciler.testing``: the same as ``python -m reconciler.testing.emulator``."""

from __future__ import annotations

import sys

from reconciler.testing.emulator import main

if __name__ == "__main__":
    sys.exit(main())
