"""Placeholder: the sshd fixture is being written."""
