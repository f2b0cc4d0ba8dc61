"""The REST API at /api/v1: thin routers over the same services the pages call."""
