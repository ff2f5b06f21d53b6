"""mirrord: keeps a read-only mirror of a web application ready to take over."""

__version__ = "0.1.0"
