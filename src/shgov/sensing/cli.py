"""``shgov sensing``: import devices in bulk, ingest readings from MQTT, replay recorded readings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="城市运行数字体征: devices and readings of the sensing network.", no_args_is_help=True)

SUBSCRIBE_SECONDS = 30  # how long the broker may take to confirm the subscription before ingest gives up


@app.command("import-devices")
def import_devices(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV (UTF-8) or Parquet of devices."),
    partial: bool = typer.Option(False, help="Write the good rows even when some are refused."),
) -> None:
    """Add or update devices: device_id, type, department, lng, lat (and status, name)."""
    from shgov.core.regions.service import RegionIndex
    from shgov.sensing import service as sensing

    settings = load_settings()
    db = open_database(settings)
    with db.session() as session:
        try:
            frame = sensing.read_devices(source.name, source.read_bytes())
            result = sensing.import_devices(session, RegionIndex.from_session(session), frame, partial=partial)
        except DomainError as exc:
            fail(f"not imported: {exc.message}", 2)
        for refused in result.refusals[:20]:
            console.print(f"row {refused.row} ({refused.device_id or '—'}): {refused.reason}")
        if not result.written:
            session.rollback()
            fail(f"not imported: {result.refused:,} of {result.rows:,} rows refused (use --partial to take the rest)")
    console.print(
        f"{result.rows:,} rows: {result.created:,} devices added, {result.updated:,} updated, "
        f"{result.refused:,} refused, in {result.seconds:.1f} s"
    )


def _report(what: str, result: object) -> None:
    from shgov.sensing.service import Replayed

    assert isinstance(result, Replayed)  # noqa: S101 - the replay's own result
    console.print(
        f"{what}: {result.rows:,} readings, {result.accepted:,} accepted, {result.refused:,} refused "
        f"in {result.seconds:.1f} s ({result.rows / max(result.seconds, 1e-9):,.0f} readings/s)"
    )
    for reason, count in sorted(result.reasons.items(), key=lambda item: -item[1]):
        console.print(f"  refused — {reason}: {count:,}")


@app.command("replay")
def replay(
    source: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV or Parquet: device_id, ts, measure, value."
    ),
    shift_to_now: bool = typer.Option(False, "--shift-to-now", help="Move the series so its last reading is now."),
    speed: float = typer.Option(
        0.0, min=0.0, help="Pace the replay this many times faster than real time (0: no pacing)."
    ),
    batch: int = typer.Option(10_000, min=1, max=1_000_000, help="Readings per batch."),
    node: str = typer.Option("replay", help="The ingest node this replay logs as."),
) -> None:
    """Feed recorded readings through the ingestion pipeline (checked, logged, stored like live ones)."""
    from shgov.sensing import service as sensing

    settings = load_settings()
    try:
        frame = sensing.read_readings(source.name, source.read_bytes())
    except DomainError as exc:
        fail(f"not replayed: {exc.message}", 2)
    pipeline = sensing.open_pipeline(settings, open_database(settings), node)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("replaying", total=frame.height)
            result = sensing.replay(
                pipeline,
                frame,
                source=f"replay:{source.name}",
                shift_to_now=shift_to_now,
                speed=speed or None,
                batch_size=batch,
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        pipeline.close()
    _report(source.name, result)


@app.command("replay-pm25")
def replay_pm25(
    shift_to_now: bool = typer.Option(True, help="Move the series (2010–2015) so its last hour is now."),
    speed: float = typer.Option(0.0, min=0.0, help="Pace: 3600 plays an hour of readings per second (0: no pacing)."),
) -> None:
    """Replay the real hourly PM2.5 series of Shanghai (CC BY 4.0, see sensing/data/SOURCE.md) as readings of
    the air-quality monitor AQ-SH-USC (`shgov demo seed` registers it)."""
    from shgov.sensing import service as sensing

    settings = load_settings()
    pipeline = sensing.open_pipeline(settings, open_database(settings), "replay")
    try:
        result = sensing.replay(
            pipeline, sensing.pm25_series(), source="replay:pm25", shift_to_now=shift_to_now, speed=speed or None
        )
    finally:
        pipeline.close()
    _report("PM2.5 (US consulate monitor, 2010–2015)", result)
    if result.accepted == 0:
        fail("nothing was accepted: is the device AQ-SH-USC registered (shgov demo seed)?")


@app.command("ingest")
def ingest(
    mqtt: str = typer.Option("", help="The broker, mqtt://host:port (default: SHGOV_SENSING__MQTT_URL)."),
    node: str = typer.Option("", help="This process's node name (default: SHGOV_SENSING__NODE)."),
    group: str = typer.Option("", help="Shared-subscription group (default: SHGOV_SENSING__MQTT_GROUP)."),
) -> None:
    """Subscribe to shgov/+/readings/+ and ingest gateway batches until stopped (SIGTERM or Ctrl-C)."""
    import signal
    import threading

    from shgov.sensing import service as sensing
    from shgov.sensing.indicators import FRESH_MS
    from shgov.sensing.mqtt import Subscriber

    settings = load_settings()
    url = mqtt or settings.sensing.mqtt_url or "mqtt://127.0.0.1:1883"
    try:
        pipeline = sensing.open_pipeline(settings, open_database(settings), node or None)
    except RuntimeError as exc:
        fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        subscriber = Subscriber(
            pipeline,
            url,
            group=group or settings.sensing.mqtt_group,
            city_code=settings.city_code,
            root=settings.sensing.mqtt_root,
        )
        pipeline.start()
        subscriber.start()
    except (DomainError, OSError) as exc:
        pipeline.close()
        fail(f"cannot reach the MQTT broker {url}: {exc}")
    if not subscriber.wait_subscribed(SUBSCRIBE_SECONDS):
        subscriber.stop()
        pipeline.close()
        fail(f"the MQTT broker {url} did not confirm the subscription to {subscriber.topic} in {SUBSCRIBE_SECONDS} s")
    console.print(f"node {pipeline.node}: ingesting {subscriber.topic} from {url}")
    # the web process merges every node's latest values into the city's vital signs
    while not stop.wait(1.0):
        pipeline.write_live(sensing.live_dir(settings), FRESH_MS)
    subscriber.stop()
    pipeline.write_live(sensing.live_dir(settings), FRESH_MS)
    pipeline.close()
    stats = pipeline.stats
    console.print(f"stopped: {stats.accepted:,} readings accepted, {sum(stats.refused.values()):,} refused")
