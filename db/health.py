"""Pipeline health read from PostgreSQL: the inbox's and the outbox's lag (for /metrics and `segbase status`)."""
from __future__ import annotations

from typing import Any

from db.uow import UnitOfWork

INBOX_TABLE = "internal.webhook_inbox"


def pipeline_lag(uow: UnitOfWork) -> dict[str, Any]:
    """Age in seconds of the oldest unapplied inbox event and of the oldest unsent outbox event (0 when none),
    and how many of each are waiting. Both reads use the partial indexes on unfinished rows."""
    outbox = uow.execute(
        "select extract(epoch from now() - (select captured_at from internal.realtime_outbox "
        "where sent_at is null order by id limit 1)) as age, "
        "(select count(*) from internal.realtime_outbox where sent_at is null) as waiting").one()
    lag: dict[str, Any] = {
        "outbox_oldest_unsent_seconds": round(float(outbox.age or 0), 3),
        "outbox_unsent": int(outbox.waiting),
    }
    inbox = uow.execute(
        f"select extract(epoch from now() - (select received_at from {INBOX_TABLE} where state = 'received' "
        f"order by received_at limit 1)) as age, "
        f"(select count(*) from {INBOX_TABLE} where state = 'received') as waiting").one()
    lag["inbox_oldest_unapplied_seconds"] = round(float(inbox.age or 0), 3)
    lag["inbox_unapplied"] = int(inbox.waiting)
    return lag
