"""Placeholder: the postgres fixture is being written."""
