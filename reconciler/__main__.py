"""``python -m reconciler``: the same command line as the ``reconciler`` console script."""

from __future__ import annotations

from reconciler.cli import run

if __name__ == "__main__":
    run()
