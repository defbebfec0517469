"""Tests of the Encord API emulator (reconciler.testing)."""
