"""``shgov audit``: verify the chain, key an old one, write a checkpoint now; and what every command shares
(the actor ``cli:<OS user>``, the audit configuration read from the settings when first needed, the last
checkpoint when the command ends)."""

from __future__ import annotations

import typer

from shgov.core.audit import capture, service
from shgov.core.cli import console, err, fail, load_settings, open_database

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _command_audit_log() -> service.AuditLog:
    audit_log = service.AuditLog(load_settings())
    audit_log.start_checkpoints(timer=False)  # a command checkpoints when it ends (and every N records)
    return audit_log


def start_command(ctx: typer.Context) -> None:
    """Every ``shgov`` command acts as ``cli:<OS user>``; its records are chained with the installation's
    key (read from the settings only if the command writes) and checkpointed when it ends."""
    capture.set_actor(capture.cli_actor())
    service.configure_lazily(_command_audit_log)
    ctx.call_on_close(service.shutdown)


def serving() -> None:
    """The server's own work (event handlers, timers) acts as ``system``; requests name their callers."""
    capture.set_actor(capture.SYSTEM)


def key_chain_after_upgrade() -> None:
    """Key an unkeyed chain after migrating (see ``service.ensure_keyed``); say so, or why not."""
    settings = load_settings()
    db = open_database(settings)
    try:
        result = service.ensure_keyed(db, service.current())
    except (service.ChainNotKeyedError, service.ChainKeyMismatchError, service.LegacyChainBrokenError) as exc:
        fail(f"审计链未加密钥 / the audit chain was not keyed: {exc}")
    finally:
        db.dispose()
    if result is not None and result.records:
        console.print(f"审计链已加密钥 / audit chain keyed: {result.records} records rehashed under the chain key")


@app.command("verify")
def verify(
    public_key: str | None = typer.Option(
        None, help="Check the checkpoints' signatures with this SM2 public key (default: the installation's)."
    ),
) -> None:
    """Walk the chain with the chain key and compare it with the signed checkpoints; exit 1 naming every
    edited, deleted, reordered or rewritten record, a cut tail and a moved head."""
    from shgov.core.audit import checkpoints
    from shgov.core.audit.verify import verify_chain

    audit_log = service.current()
    if public_key is None and checkpoints.files(audit_log.checkpoint_dir):
        public_key = audit_log.signer().public_hex
    db = open_database(audit_log.settings)
    try:
        with db.session(write=False) as session:
            result = verify_chain(session, audit_log.key, audit_log.checkpoint_dir, public_key)
    finally:
        db.dispose()
    if not result.ok:
        for finding in result.findings:
            err.print(f"  {finding.kind}: {finding.zh} / {finding.en}", markup=False, soft_wrap=True)
        found = f"{len(result.findings)} finding{'s' if len(result.findings) != 1 else ''}"
        err.print(
            f"审计链已被改动 / audit chain broken at record {result.first_broken_seq}: {result.reason} "
            f"({found}, {result.checked} records read)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    anchored = (
        f", the newest of {result.checkpoints} signed checkpoints at record {result.last_checkpoint_seq}"
        if result.checkpoints
        else ", no signed checkpoint yet"
    )
    console.print(f"审计链完好 / audit chain holds: {result.checked} records verified{anchored}", soft_wrap=True)


@app.command("rekey")
def rekey(
    force: bool = typer.Option(False, help="Key the chain even though its unkeyed form does not verify."),
) -> None:
    """Rehash a chain written before the chain key (plain SM3) under the key. ``shgov db upgrade`` does it by
    itself; ``--force`` keys a broken one after you have looked (the break is recorded)."""
    audit_log = service.current()
    db = open_database(audit_log.settings)
    try:
        with db.session() as session:
            result = service.rekey(session, audit_log.key, force=force)
            if result is not None and result.records:
                service.record_rekey(session, audit_log.key, result)
    except service.LegacyChainBrokenError as exc:
        fail(f"未加密钥 / not keyed: {exc}; look with `shgov audit verify`, then rekey with --force")
    except service.ChainKeyMismatchError as exc:
        fail(f"未加密钥 / not keyed: {exc}", 2)
    finally:
        db.dispose()
    if result is None:
        console.print(f"审计链已加密钥 / the audit chain is keyed already (key {audit_log.key.key_id})")
        return
    broken = f"; its unkeyed form was broken at record {result.broken_at}" if result.broken_at else ""
    console.print(f"审计链已加密钥 / audit chain keyed: {result.records} records rehashed{broken}")


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign and write a checkpoint of the chain's end now (servers write them by themselves; a cron job
    can add more)."""
    audit_log = service.current()
    checkpointer = audit_log.checkpointer or audit_log.start_checkpoints(timer=False)
    written = checkpointer.checkpoint()
    signer = audit_log.signer()
    if written is None:
        console.print("nothing new to sign: the chain's end is checkpointed already (or empty)")
    else:
        console.print(f"checkpoint: record {written.seq} ({written.hash[:16]}…) signed by key {written.key}")
    console.print(f"public key (SM2): {signer.public_hex}", soft_wrap=True)
