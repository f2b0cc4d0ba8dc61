"""Named errors. Each carries a message written for the person who caused it."""

from __future__ import annotations


class QuorumError(Exception):
    """Base error: `user_message` says what went wrong and what to do next."""

    code = "error"

    def __init__(self, user_message: str, *, details: list[str] | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.details = list(details or [])

    def __str__(self) -> str:
        if not self.details:
            return self.user_message
        return self.user_message + " " + "; ".join(self.details)


class NotFound(QuorumError):
    code = "not_found"


class PermissionDenied(QuorumError):
    code = "permission_denied"

    def __init__(
        self,
        user_message: str,
        *,
        details: list[str] | None = None,
        permission: str = "",
        attempt: str = "act",
        model_id: int | None = None,
    ) -> None:
        super().__init__(user_message, details=details)
        self.permission = permission
        self.attempt = attempt
        self.model_id = model_id


class InvalidTransition(QuorumError):
    code = "invalid_transition"


class Conflict(QuorumError):
    """Someone else changed the object first; reload and try again."""

    code = "conflict"


class InvalidInput(QuorumError):
    code = "invalid_input"


class UnsafeArtifact(InvalidInput):
    """A model file that could run code or exhaust the server; it is never stored."""

    code = "unsafe_artifact"


class ConfigurationError(QuorumError):
    code = "configuration"


class AuthenticationFailed(QuorumError):
    code = "authentication_failed"


class SandboxFailure(InvalidInput):
    """The model failed, hung or crashed inside its sandbox; `step` says where, `kind` names
    the exception type (never its text, which may carry data)."""

    code = "sandbox_failure"

    def __init__(
        self,
        user_message: str,
        *,
        details: list[str] | None = None,
        step: str = "",
        kind: str = "",
    ) -> None:
        super().__init__(user_message, details=details)
        self.step = step
        self.kind = kind
