"""The HTTP API (``/api/v1``) served by the daemon; see ``docs/api.md``."""
