"""Fixtures shared by several test modules (their helpers live in modules beside them)."""

from redis_server import redis_server

__all__ = ["redis_server"]
