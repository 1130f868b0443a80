"""One error hierarchy for the whole project.

Every error a caller can act on is a :class:`LookalikeError` carrying a human message and the
HTTP status a service should answer with. Services install one exception handler that renders
``{"error": <code>, "detail": <message>}``.
"""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class: a clear message and the HTTP status code it maps to."""

    status_code: int = 500
    code: str = "internal_error"
    exit_code: int = 1
    """A command line's exit status when it stops on this error."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.message}


class ConfigurationError(LookalikeError):
    """A setting is missing or inconsistent."""

    code = "configuration_error"


class InvalidSettingError(ConfigurationError):
    """A setting's value is not one it accepts (exit status 2, like a bad option)."""

    code = "invalid_setting"
    exit_code = 2


class CatalogNotMigratedError(LookalikeError):
    """The catalog database has no schema (or an older one) yet."""

    status_code = 503
    code = "catalog_not_migrated"


class NotFoundError(LookalikeError):
    status_code = 404
    code = "not_found"


class InvalidInputError(LookalikeError):
    """The caller sent something we cannot use (bad parameter, malformed document)."""

    status_code = 422
    code = "invalid_input"


class PayloadTooLargeError(LookalikeError):
    """More bytes (or pixels) than the limit allows."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(LookalikeError):
    """Content of a kind the service does not take."""

    status_code = 415
    code = "unsupported_media_type"


class ReadOnlyQueryError(InvalidInputError):
    """An analyst query tried to write, or was not a single read statement."""

    code = "read_only_query"


class ServiceUnavailableError(LookalikeError):
    """A dependency (database, broker, index, downstream service) did not answer in time."""

    status_code = 503
    code = "service_unavailable"


class ConflictError(LookalikeError):
    """The thing is busy or in a state that does not allow the request now."""

    status_code = 409
    code = "conflict"
