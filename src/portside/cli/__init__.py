"""The ``portside`` command."""
