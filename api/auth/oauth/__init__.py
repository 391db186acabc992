"""Sign-in with OpenID Connect providers (Google, Apple): ID-token verification (`oidc.py`), the providers segbase
is configured for (`providers.py`), the account decision and identity linking (`accounts.py`), and the redirect
flow with its flow-state rows and PKCE (`flow.py`). Views are in api/auth/views/oauth.py and
api/auth/views/identities.py; SQL in db/auth_flow.py.
"""
