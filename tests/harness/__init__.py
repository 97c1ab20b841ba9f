"""Test harness: real servers started on ephemeral ports, and local fakes of external APIs.

Each module here is a pytest plugin (listed in ``tests/conftest.py``). A required server that
cannot be started fails the run loudly with a message saying how to install it; nothing skips.
"""
