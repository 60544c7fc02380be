"""Column helpers shared by the models: UUID primary keys, UTC timestamps, enums stored as strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from sqlalchemy import String, Uuid
from sqlalchemy.orm import mapped_column

UuidPk = Annotated[uuid.UUID, mapped_column(Uuid, primary_key=True, default=uuid.uuid4)]
Timestamp = Annotated[datetime, mapped_column()]  # DateTime(timezone=True) via Base.type_annotation_map
Name = Annotated[str, mapped_column(String(200))]
