"""Command-line entry points (called by the thin scripts at the repository root)."""
