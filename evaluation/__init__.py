"""Evaluation: grounding scores of caption result files and end-to-end runs against the API."""
