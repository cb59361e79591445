"""Byte storage: the driver interface, its drivers, and the one module that builds paths."""
