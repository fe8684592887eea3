"""Tests mirror ``src/shgov``."""
