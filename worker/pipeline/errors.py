"""Errors the service turns into HTTP answers: each carries its status code."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotAnImage(ServiceError):
    status_code = 415


class BadImage(ServiceError):
    status_code = 422


class TooLarge(ServiceError):
    status_code = 413


class NoFace(ServiceError):
    status_code = 422


class InvalidParameter(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class NotAcceptable(ServiceError):
    status_code = 406


class NotReady(ServiceError):
    status_code = 409


class QueueFull(ServiceError):
    status_code = 429


class Unavailable(ServiceError):
    status_code = 503


class Busy(ServiceError):
    """Too many big photos in flight: the client should come back (the answer has Retry-After)."""

    status_code = 503
    retry_after_s = 2
