"""Models, versions, their data-encryption keys (wrapped under the provider KEK), reference values, policies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import Name, Timestamp, UuidPk


class Model(Base):
    __tablename__ = "models"

    id: Mapped[UuidPk]
    name: Mapped[Name] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[Timestamp]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[UuidPk]
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"))
    version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]


class ModelKey(Base):
    """The DEK of a model version, only ever stored wrapped under the key-encryption key ``kek_id``."""

    __tablename__ = "model_keys"

    id: Mapped[UuidPk]
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    kek_id: Mapped[str] = mapped_column(String(100))
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary(512))
    created_at: Mapped[Timestamp]
    retired_at: Mapped[datetime | None]


class RecordStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


class ReferenceValueSet(Base):
    """Reference values of one model version on one platform (e.g. allowed MRTD/RTMRs, SNP MEASUREMENT)."""

    __tablename__ = "reference_value_sets"

    id: Mapped[UuidPk]
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    platform: Mapped[str] = mapped_column(String(32))
    status: Mapped[RecordStatus] = mapped_column(str_enum(RecordStatus))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[Timestamp]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[Timestamp]


class AppraisalPolicy(Base):
    """A platform policy document (the JSON of IntelPolicy / SnpPolicy)."""

    __tablename__ = "appraisal_policies"

    id: Mapped[UuidPk]
    name: Mapped[Name] = mapped_column(unique=True)
    platform: Mapped[str] = mapped_column(String(32))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[Timestamp]
