"""Tiny random-weight models for offline demos and tests: plumbing only, never quality."""
