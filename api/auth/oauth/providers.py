"""The OpenID Connect providers segbase signs users in with, built from Settings.

Google and Apple share one path: an ID token is verified against the provider's discovery document and keys
(api/auth/oauth/oidc.py); only the names, audiences and discovery URLs differ. Google alone also runs the browser
redirect flow (it needs the web client's secret); Apple's redirect flow needs a client secret that is itself a
signed JWT, which segbase does not make, so Apple is native sign-in only.
"""
from __future__ import annotations

from dataclasses import dataclass

from schemas.settings import Settings

GOOGLE_ISSUER = "https://accounts.google.com"
# Google also issues tokens with the scheme-less issuer; go-oidc accepts both for Google only
# (coreos/go-oidc `verify.go`), and so does segbase.
GOOGLE_ISSUER_ALIASES = ("accounts.google.com",)
DEFAULT_SCOPES = ("openid", "email", "profile")


@dataclass(frozen=True)
class Provider:
    name: str
    client_ids: tuple[str, ...]
    discovery_url: str
    client_secret: str | None = None
    skip_nonce_check: bool = False
    issuer_aliases: tuple[str, ...] = ()

    @property
    def redirect_capable(self) -> bool:
        """The redirect flow needs the first (web) client ID and its secret."""
        return bool(self.client_ids and self.client_secret)


def configured_providers(settings: Settings) -> dict[str, Provider]:
    """The enabled providers by name."""
    providers: dict[str, Provider] = {}
    if settings.auth_google_enabled:
        secret = settings.auth_google_client_secret
        providers["google"] = Provider(
            name="google", client_ids=tuple(settings.auth_google_client_ids),
            discovery_url=settings.auth_google_discovery_url,
            client_secret=secret.get_secret_value() if secret else None,
            skip_nonce_check=settings.auth_google_skip_nonce_check, issuer_aliases=GOOGLE_ISSUER_ALIASES)
    if settings.auth_apple_enabled:
        providers["apple"] = Provider(name="apple", client_ids=tuple(settings.auth_apple_client_ids),
                                      discovery_url=settings.auth_apple_discovery_url)
    return providers


KNOWN_PROVIDERS = ("google", "apple")
