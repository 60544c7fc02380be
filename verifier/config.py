"""One typed Settings object (pydantic-settings, ``KEYWARD_`` prefix). Nothing else reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from verifier.trust.store import DEFAULT_VENDOR_ROOTS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYWARD_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/keyward"
    vendor_roots_dir: Path = DEFAULT_VENDOR_ROOTS


def get_settings() -> Settings:
    return Settings()
