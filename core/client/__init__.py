"""Quorum's HTTP clients (the `quorum` CLI and the Python SDK).

They reach the server only through its REST API with a URL and a token, and import nothing
of the server side except the pure modules `core.errors`, `core.modelfile` and (for the Spark
job in `core.client.spark`) `core.monitoring`.
"""
