"""Bearer-token auth shared by gRPC (`authorization` metadata) and HTTP (`Authorization` header)."""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Optional

from logllm_plugin.config import ConfigError, ServerConfig


def load_token(config: ServerConfig) -> Optional[str]:
    """The configured token (from config/env or a file), or None when auth is off."""
    if config.token_file:
        try:
            token = Path(config.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"server.token_file {config.token_file}: {exc.strerror or exc}"]) from None
        if not token:
            raise ConfigError([f"server.token_file {config.token_file} is empty"])
        return token
    if config.token is not None:
        if not config.token.strip():
            raise ConfigError(["server.token is empty"])
        return config.token.strip()
    return None


class TokenCheck:
    """Constant-time check of an `Authorization: Bearer <token>` value.

    The scheme is case-insensitive (RFC 7235 §2.1: `bearer x` is as valid as `Bearer x`); the
    token itself is compared exactly.
    """

    def __init__(self, token: Optional[str]):
        self._expected = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: Optional[str]) -> bool:
        if self._expected is None:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), self._expected)
