"""The auth mails: GoTrue's default subjects, a link to `/auth/v1/verify` and the code (supabase/auth
`internal/mailer/templatemailer/templatemailer.go`)."""
from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from schemas.settings import Settings

# kind -> (subject, heading, sentence, link text)
TEMPLATES = {
    "signup": ("Confirm your email address", "Confirm your signup", "Follow this link to confirm your email address:",
               "Confirm your email address"),
    "invite": ("You've been invited", "You have been invited", "You have been invited to create an account. Follow "
               "this link to accept the invitation:", "Accept the invitation"),
    "magiclink": ("Your sign-in link", "Your sign-in link", "Follow this link to sign in:", "Sign in"),
    "recovery": ("Reset your password", "Reset your password", "Follow this link to reset your password:",
                 "Reset your password"),
    "email_change": ("Confirm your new email address", "Confirm your new email address",
                     "Follow this link to confirm the change of your email address to {email}:",
                     "Confirm the new address"),
}


def action_link(settings: Settings, kind: str, token_hash: str, redirect_to: str) -> str:
    """GoTrue's ConfirmationURL: `<API>/auth/v1/verify?token=<token_hash>&type=<kind>&redirect_to=<redirect>`."""
    return (f"{settings.public_url}/auth/v1/verify?"
            + urlencode({"token": token_hash, "type": kind, "redirect_to": redirect_to}))


def render(kind: str, *, link: str, otp: str, email: str) -> tuple[str, str, str]:
    """(subject, plain text, html) of one mail."""
    subject, heading, sentence, link_text = TEMPLATES[kind]
    sentence = sentence.format(email=email)
    text = f"{heading}\n\n{sentence}\n{link}\n\nAlternatively, enter the code: {otp}\n"
    html = (f"<h2>{escape(heading)}</h2>\n<p>{escape(sentence)}</p>\n"
            f'<p><a href="{escape(link, quote=True)}">{escape(link_text)}</a></p>\n'
            f"<p>Alternatively, enter the code: {escape(otp)}</p>\n")
    return subject, text, html
