"""``shgov sharing``: the periodic sweep of 1515 requests and grants."""

from __future__ import annotations

import typer

from shgov.core.cli import console, load_settings, open_database

app = typer.Typer(help="1515 sharing: requests, grants and the gateway.", no_args_is_help=True)


@app.command("sweep")
def sweep_command() -> None:
    """Remind deciders before deadlines, escalate overdue requests, expire grants, send due notifications.

    Run it from cron (e.g. hourly); it is idempotent."""
    from shgov.sharing import service as sharing

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            result = sharing.sweep(session)
        with db.session() as session:
            sent = sharing.deliver_due(session, settings.events.url)
        console.print(
            f"reminded {result.reminded}, escalated {result.escalated}, grants expired {result.expired}; "
            f"notifications delivered {sent.delivered}, retried {sent.retried}, dead {sent.dead}"
        )
    finally:
        db.dispose()
