"""Placeholder: the seaweedfs fixture is being written."""
