"""Request bodies of /storage/v1 as the three Supabase storage clients send them (storage-js 2.119, storage3
2.34.1, Flutter storage_client 2.8): pydantic models that accept each client's spelling (a numeric-string
`expiresIn` from storage3, Dart's string transform values, Flutter's explicit `"search": null`, a
`file_size_limit` of "1MB") and refuse anything else with a message naming the field."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_ITEMS_PER_REQUEST = 1000  # upstream's MAX_OBJECTS_PER_REQUEST for remove and createSignedUrls
MAX_LIST_LIMIT = 1000
SIZE_WITH_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(GB|MB|KB|B)\s*$", re.IGNORECASE)
UNIT_BYTES = {"B": 1, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


def parse_size(value: Any) -> int | None:
    """`file_size_limit` as upstream accepts it: integer bytes or "<n>[.<d>](GB|MB|KB|B)" (supabase/storage
    src/http/schemas/file-size-limit.ts, decimal units), null for none; 0 means none too."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("file_size_limit must be a number of bytes or a size like '5MB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("file_size_limit must not be negative")
        return value or None
    if isinstance(value, float) and value.is_integer():
        return parse_size(int(value))
    if isinstance(value, str):
        if value.strip().isdigit():
            return parse_size(int(value))
        match = SIZE_WITH_UNIT.match(value)
        if match:
            return parse_size(int(float(match[1]) * UNIT_BYTES[match[2].upper()]))
    raise ValueError("file_size_limit must be a number of bytes or a size like '5MB'")


def _int_from_text(value: Any) -> Any:
    """storage3 sends numbers as strings (`{"expiresIn": "60"}`), Dart sends transform values as strings."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


IntOrText = Annotated[int, BeforeValidator(_int_from_text)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class BucketBody(StrictModel):
    id: str | None = None
    name: str | None = None
    public: bool | None = None
    file_size_limit: Annotated[int | None, BeforeValidator(parse_size)] = None
    allowed_mime_types: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(None, max_length=100)
    type: Literal["STANDARD"] | None = None

    @field_validator("allowed_mime_types")
    @classmethod
    def _mime_types(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            if not re.match(r"^[\w.+-]+/([\w.+-]+|\*)$|^\*(/\*)?$", item):
                raise ValueError(f"{item!r} is not a MIME type")
        return value or None


class SortBy(StrictModel):
    column: Literal["name", "updated_at", "created_at", "last_accessed_at"] = "name"
    order: Literal["asc", "desc", "ASC", "DESC"] = "asc"


class ListBody(StrictModel):
    prefix: str | None = ""
    limit: IntOrText | None = Field(100, ge=1)
    offset: IntOrText | None = Field(0, ge=0)
    sortBy: SortBy | None = None  # noqa: N815 — the clients' spelling
    search: str | None = None


class RemoveBody(StrictModel):
    prefixes: list[str | dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)

    def names(self) -> list[Any]:
        """storage-js 2.119 may send `{path, versionId}` entries (versioned buckets); the path is what counts."""
        return [item.get("path") if isinstance(item, dict) else item for item in self.prefixes]


class MoveCopyBody(StrictModel):
    bucketId: str  # noqa: N815
    sourceKey: str  # noqa: N815
    destinationKey: str  # noqa: N815
    destinationBucket: str | None = None  # noqa: N815
    copyMetadata: bool | None = None  # noqa: N815
    metadata: dict[str, Any] | None = None


class Transform(StrictModel):
    width: IntOrText | None = Field(None, ge=0)
    height: IntOrText | None = Field(None, ge=0)
    resize: Literal["cover", "contain", "fill"] | None = None
    quality: IntOrText | None = Field(None, ge=1, le=100)
    format: Literal["origin", "avif", "webp", "png", "jpeg"] | None = None

    def is_empty(self) -> bool:
        return not any((self.width, self.height, self.resize, self.quality, self.format))


class SignBody(StrictModel):
    expiresIn: IntOrText = Field(ge=1)  # noqa: N815
    transform: Transform | None = None
    download: bool | str | None = None


class SignManyBody(StrictModel):
    expiresIn: IntOrText = Field(ge=1)  # noqa: N815
    paths: list[str] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)
    download: bool | str | None = None
