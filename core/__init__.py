"""Quorum: model review, deployment, monitoring and compliance."""
