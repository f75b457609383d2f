"""Slotwise: an appointment-scheduling backend."""

__version__ = "0.1.0"
