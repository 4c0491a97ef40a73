"""Configuration: one validated settings object, read from SIGNDIGITS_* variables."""
