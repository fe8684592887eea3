"""``shgov registers``: build the registers and look records up."""

from __future__ import annotations

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(
    help="The base registers (自然人, 法人, 电子证照, 空间地理) built from the lake.", no_args_is_help=True
)


@app.command("build")
def build_command(
    register: list[str] = typer.Argument(None, help="person, enterprise, licence (default: all)."),
) -> None:
    """Build new versions of the registers from the lake's live versions."""
    from shgov.registers import service as registers

    settings = load_settings()
    db = open_database(settings)
    try:
        for code in register or ["person", "enterprise", "licence", "address"]:
            with db.session() as session:
                result = registers.build(session, settings.lake_dir, code, "cli")
            conflicts = ", ".join(f"{k} {v:,}" for k, v in sorted(result.conflicts.items())) or "none"
            console.print(
                f"{code} v{result.version}: {result.rows:,} records, {result.changed:,} changed; conflicts: {conflicts}"
            )
    except DomainError as exc:
        fail(f"not built: {exc.message}", 2)
    finally:
        db.dispose()


@app.command("grids")
def grids_command() -> None:
    """Lay the management grid over the geocoded addresses, then rebuild the address register."""
    from shgov.core.regions.service import RegionIndex
    from shgov.registers import service as registers

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            index = RegionIndex.from_session(session)
            plan, result = registers.lay_grids(session, settings.lake_dir, index, "cli")
        console.print(f"grids: {plan.created:,} new, {plan.existing:,} kept, {len(plan.refused):,} refused")
        for cell, reason in sorted(plan.refused.items())[:20]:
            console.print(f"  {cell}: {reason}")
        console.print(f"address v{result.version}: {result.rows:,} records")
    except DomainError as exc:
        fail(f"no grids laid: {exc.message}", 2)
    finally:
        db.dispose()
