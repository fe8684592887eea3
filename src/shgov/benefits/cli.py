"""``shgov benefits``: check a policy file, dry-run a policy, run the active policies (schedule it with cron)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from shgov.core.calendar.service import city_today
from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="免申即享 policies: check, dry-run, run.", no_args_is_help=True)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)", 2)
    return None  # pragma: no cover - fail() exits


@app.command("check")
def check_command(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON: one policy or a list of them."),
) -> None:
    """Check policies written in a file against the registers' schema, without saving them."""
    from shgov.benefits import service as benefits

    settings = load_settings()
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{source}: not JSON ({exc})", 2)
    items = raw if isinstance(raw, list) else [raw]
    db = open_database(settings)
    failed = 0
    try:
        with db.session() as session:
            schema = benefits.register_schema(session)
            for item in items:
                try:
                    spec = benefits.spec_from_json(item)
                    benefits.check_spec(session, schema, spec)
                    console.print(f"[green]ok[/green]   {spec.code}")
                except DomainError as exc:
                    failed += 1
                    console.print(f"[red]fail[/red] {item.get('code', '?')}: {exc.field}: {exc.message}")
            session.rollback()
    finally:
        db.dispose()
    if failed:
        fail(f"{failed} of {len(items)} policies do not check", 1)


@app.command("dry-run")
def dry_run_command(code: str, as_of: str | None = typer.Option(None, help="YYYY-MM-DD; default today.")) -> None:
    """How many would qualify under a policy's latest text, for how much."""
    from shgov.benefits import service as benefits

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            latest = benefits.latest_version(session, code)
            if latest is None:
                fail(f"no policy {code!r}", 2)
            day = _day(as_of) or city_today()
            result = benefits.dry_run(session, settings.lake_dir, code, day, latest.version.version)
    except DomainError as exc:
        fail(f"{exc.field}: {exc.message}", 2)
    finally:
        db.dispose()
    console.print(
        f"{code} v{result.version} on {result.as_of}: {result.qualified:,} of {result.evaluated:,} qualify, "
        f"{result.total_fen / 100:,.2f} yuan; {result.missing:,} wait on missing data"
        + ("" if result.within_budget else f" — over the budget of {(result.budget_fen or 0) / 100:,.2f} yuan")
    )


@app.command("run")
def run_command(
    codes: list[str] = typer.Argument(None, help="Policy codes; none: every active policy that grants or invites."),
    as_of: str | None = typer.Option(None, help="YYYY-MM-DD; default today."),
) -> None:
    """Run active policies (the scheduled run: put it in cron). A repeated run grants nobody twice."""
    from shgov.benefits import service as benefits

    settings = load_settings()
    db = open_database(settings)
    failures = 0
    try:
        with db.session() as session:
            day = _day(as_of) or city_today()
            wanted = codes or [f.policy.code for f in benefits.active_policies(session) if f.version.mode != "apply"]
        for code in wanted:
            try:
                record = benefits.run_in_chunks(db, settings.lake_dir, code, day, "scheduled")
                console.print(
                    f"{code}: {record.qualified:,} qualify, {record.granted:,} new, {record.already:,} had it, "
                    f"{record.over_budget:,} over budget, {record.total_fen / 100:,.2f} yuan"
                )
            except DomainError as exc:
                failures += 1
                console.print(f"[red]{code}[/red]: {exc.message}")
    finally:
        db.dispose()
    if failures:
        fail(f"{failures} of {len(wanted)} runs failed", 1)
