"""The flows' tests use the session's Prefect test server (``prefect_server`` in tests/conftest.py)."""
