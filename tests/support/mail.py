"""A real SMTP server for tests (segbase's own mail catcher on a free port) and helpers to read auth mails."""
from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from segbase.mailcatcher import MailCatcher
from tests.support.processes import wait_for

LINK = re.compile(r"(https?://\S+/auth/v1/verify\?\S+)")
CODE = re.compile(r"enter the code: (\d{6})")


def start_mail_server() -> MailCatcher:
    return MailCatcher("127.0.0.1", 0).start()


def wait_for_mail(server: MailCatcher, address: str, count: int = 1, timeout: float = 60) -> EmailMessage:
    """The `count`-th mail to `address` (the latest once that many arrived)."""
    mails = wait_for(lambda: len(server.to(address)) >= count and server.to(address), timeout,
                     message=f"{count} mail(s) to {address}")
    return mails[count - 1]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def link_of(message: EmailMessage) -> str:
    match = LINK.search(text_of(message))
    assert match, text_of(message)
    return match.group(1)


def code_of(message: EmailMessage) -> str:
    match = CODE.search(text_of(message))
    assert match, text_of(message)
    return match.group(1)


def link_params(link: str) -> dict[str, str]:
    """`token`, `type`, `redirect_to` of a verify link."""
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}
