"""Placeholder: the memcached fixture is being written."""
