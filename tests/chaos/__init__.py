"""Fault-injection suite: real Redis and ferroq processes, killed and stalled on purpose.

A package (unlike ``tests/``) so that its ``conftest`` and modules do not collide with
``tests/conftest.py`` under mypy, which names modules by their path.
"""
