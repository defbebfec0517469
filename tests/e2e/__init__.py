"""End-to-end tests through the CLI."""
