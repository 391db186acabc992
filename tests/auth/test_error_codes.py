"""/auth/v1's error codes come from one catalogue (`api.auth.errors.ErrorCode`), never from string literals."""
from __future__ import annotations

import ast
from pathlib import Path

from flask import Flask

from api.auth.errors import AuthError, ErrorCode

AUTH_PACKAGE = Path(__file__).resolve().parents[2] / "api" / "auth"


def test_no_error_code_is_a_string_literal():
    literals = []
    for path in sorted(AUTH_PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                literals.append(f"{path.name}:{node.value.lineno} code={node.value.value!r}")
    assert literals == []


def test_codes_render_as_their_plain_string():
    with Flask(__name__).app_context():
        response = AuthError("Email not confirmed", status=400, code=ErrorCode.EMAIL_NOT_CONFIRMED).response()
    body = response.get_json()
    assert body == {"code": "email_not_confirmed", "message": "Email not confirmed"}
