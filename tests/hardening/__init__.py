"""Hardening tests: fault injection, crash safety, fuzzing, secrets and safe defaults (see RELIABILITY.md)."""
