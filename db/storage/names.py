"""Bucket and object names: what storage accepts, checked before any SQL or byte is touched.

Bucket ids follow Supabase Storage (`VALID_BUCKET_NAME`, supabase/storage src/storage/limits.ts): 1–100 of
`A-Za-z0-9 _!-.*'()&$@=;:+,?`. Object names are wider than upstream's ASCII-only set (its refusal of non-ASCII
names is a long-standing complaint, supabase/storage#133): any Unicode text up to 1024 UTF-8 bytes (S3's key
limit) made of non-empty `/`-separated segments, none of them `.` or `..`, and no control or format characters
(no NUL, newline, or bidirectional override that would disguise a name).
"""
from __future__ import annotations

import re
import unicodedata

from db.storage.errors import ErrorCode, StorageError

BUCKET_NAME = re.compile(r"^[A-Za-z0-9_!\-.*'() &$@=;:+,?]{1,100}$")
MAX_OBJECT_NAME_BYTES = 1024


def check_bucket_id(bucket_id: str) -> str:
    if not isinstance(bucket_id, str) or not BUCKET_NAME.match(bucket_id) or bucket_id in (".", ".."):
        raise StorageError(400, ErrorCode.INVALID_BUCKET_NAME, f"Bucket name invalid: {bucket_id!r}")
    return bucket_id


def object_name_problem(name: str) -> str | None:
    """Why `name` is not a valid object name, or None."""
    if not name:
        return "the object name is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES:
        return f"the object name is longer than {MAX_OBJECT_NAME_BYTES} bytes"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return f"the object name contains the control character U+{ord(char):04X}"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "the object name has an empty, '.' or '..' segment"
    return None


def check_object_name(name: str) -> str:
    """A valid object name (leading slashes dropped, as every client does), else 400 InvalidKey."""
    if not isinstance(name, str):
        raise StorageError(400, ErrorCode.INVALID_KEY, "Invalid key: the object name must be a string")
    name = name.lstrip("/")
    problem = object_name_problem(name)
    if problem:
        shown = name.encode("unicode_escape").decode("ascii")[:200]
        raise StorageError(400, ErrorCode.INVALID_KEY, f"Invalid key: {shown} ({problem})")
    return name


def folder_prefix(prefix: str | None) -> str:
    """A list() prefix as a folder: '' for the bucket's root, else the folder name with one trailing '/'."""
    prefix = (prefix or "").strip("/")
    if not prefix:
        return ""
    for char in prefix:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            raise StorageError(400, ErrorCode.INVALID_KEY, "Invalid prefix: it contains a control character")
    return prefix + "/"
