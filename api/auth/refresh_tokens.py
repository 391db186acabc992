"""Refresh-token crypto: the opaque tokens handed to clients and the sealed copy of each child.

`auth.refresh_tokens.token` holds only a SHA-256 of a token (`db.auth.hash_refresh_token`). GoTrue's parent
exception (a client that lost a refresh answer retries with the parent and gets the SAME child back) needs the
child in clear, so each child is also stored sealed with AES-GCM under a key derived from its parent token: only a
holder of the parent can open it, and a database dump alone yields no usable token.
"""
from __future__ import annotations

import hashlib
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from db.auth import hash_refresh_token

NONCE_BYTES = 12


def new_refresh_token() -> str:
    """A fresh opaque refresh token: 48 characters (GoTrue refuses tokens under 12)."""
    return uuid.uuid4().hex[:12] + os.urandom(18).hex()


def _seal_key(parent_token: str) -> bytes:
    return hashlib.sha256(b"segbase-refresh-seal:" + parent_token.encode()).digest()


def seal_child(parent_token: str, child_token: str) -> bytes:
    """Encrypt the child with a key only the parent's holder can derive; the child's hash is the associated data."""
    nonce = os.urandom(NONCE_BYTES)
    aad = hash_refresh_token(child_token).encode()
    return nonce + AESGCM(_seal_key(parent_token)).encrypt(nonce, child_token.encode(), aad)


def unseal_child(parent_token: str, sealed: bytes | None, child_hash: str) -> str | None:
    """The child token sealed under `parent_token`, or None when it cannot be opened or does not match its hash."""
    if not sealed or len(sealed) <= NONCE_BYTES:
        return None
    try:
        child = AESGCM(_seal_key(parent_token)).decrypt(bytes(sealed[:NONCE_BYTES]), bytes(sealed[NONCE_BYTES:]),
                                                        child_hash.encode())
    except InvalidTag:
        return None
    token = child.decode()
    return token if hash_refresh_token(token) == child_hash else None
