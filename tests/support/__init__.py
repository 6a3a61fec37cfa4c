"""Helpers every test folder shares: test images, and ``imagegate serve`` as a process.

Imported as ``support.<module>``: tests/ is on sys.path because tests/conftest.py sits
in a folder without ``__init__.py`` (pytest's default "prepend" import mode), the
same way ``tls.tls_support`` and ``gateway.tenancy_support`` are imported across
folders.
"""
