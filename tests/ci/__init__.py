"""Tests of the CI integration files (GitHub Action, workflows, pre-commit hooks)."""
