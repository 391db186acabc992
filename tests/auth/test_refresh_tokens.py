"""The refresh-token crypto on its own: tokens, and a child sealed so only its parent's holder can open it."""
from __future__ import annotations

from api.auth.refresh_tokens import new_refresh_token, seal_child, unseal_child
from db.auth import hash_refresh_token


def test_tokens_are_48_characters_and_distinct():
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100 and {len(token) for token in tokens} == {48}


def test_only_the_parent_opens_the_sealed_child():
    parent, child, stranger = new_refresh_token(), new_refresh_token(), new_refresh_token()
    sealed = seal_child(parent, child)
    assert child.encode() not in sealed
    assert unseal_child(parent, sealed, hash_refresh_token(child)) == child
    assert unseal_child(stranger, sealed, hash_refresh_token(child)) is None
    assert unseal_child(parent, sealed, hash_refresh_token(stranger)) is None  # bound to the child's hash
    assert unseal_child(parent, None, hash_refresh_token(child)) is None
    assert unseal_child(parent, sealed[:12], hash_refresh_token(child)) is None
