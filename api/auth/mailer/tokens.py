"""One-time email tokens: a long random `token_hash` for the link (what GoTrue's links and `verifyOtp({token_hash})`
carry) and a 6-digit code for typing, stored only as HMAC-SHA256s keyed from JWT_SECRET. A database dump gives no
usable link, and the short code cannot be brute-forced offline without the secret."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from schemas.settings import Settings

OTP_LENGTH = 6  # GoTrue's MAILER_OTP_LENGTH default


@dataclass(frozen=True)
class NewToken:
    token_hash: str  # goes into the link (`/verify?token=…`) and generate_link's `hashed_token`
    otp: str  # goes into the mail body and generate_link's `email_otp`
    link_hash: str  # stored
    otp_hash: str  # stored


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.jwt_secret.get_secret_value().encode(), b"segbase auth email tokens",
                    hashlib.sha256).digest()


def link_hash(settings: Settings, token_hash: str) -> str:
    return hmac.new(_key(settings), b"link:" + token_hash.encode(), hashlib.sha256).hexdigest()


def otp_hash(settings: Settings, email: str, otp: str) -> str:
    return hmac.new(_key(settings), f"otp:{email.strip().lower()}:{otp.strip()}".encode(), hashlib.sha256).hexdigest()


def new_token(settings: Settings, email: str) -> NewToken:
    token_hash = secrets.token_hex(28)  # 56 hex characters, as long as GoTrue's sha224 token hashes
    otp = f"{secrets.randbelow(10 ** OTP_LENGTH):0{OTP_LENGTH}d}"
    return NewToken(token_hash, otp, link_hash(settings, token_hash), otp_hash(settings, email, otp))


def email_hash(email: str) -> str:
    """What the outbox keeps to count mails per address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()
