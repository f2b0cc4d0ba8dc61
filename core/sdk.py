"""`from core.sdk import Client`: the Python SDK, an HTTP client of Quorum's REST API.

Kept as a thin re-export of `core.client.sdk.Client` for scripts written against it.
"""

from core.client.sdk import ArtifactMismatch, Client

__all__ = ["ArtifactMismatch", "Client"]
