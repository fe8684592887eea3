"""``shgov workorders``: train and evaluate the classifier, escalate overdue orders."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="一网统管 work orders: the classifier, escalation.", no_args_is_help=True)

EXAMPLES = typer.Option(
    ..., "--from", exists=True, dir_okay=False, help="CSV or XLSX: a text (or title + body) column and a category."
)


@app.command("train")
def train_command(source: Path = EXAMPLES) -> None:
    """Train the classifier from labelled history and make it the one that classifies new orders."""
    from shgov.workorders import classifier
    from shgov.workorders import service as workorders

    settings = load_settings()
    try:
        texts, labels = classifier.read_examples(source.name, source.read_bytes())
        started = time.perf_counter()
        model = classifier.train(texts, labels)
    except DomainError as exc:
        fail(f"not trained: {exc.message}", 2)
    classifier.save(model, workorders.model_path(settings))
    console.print(
        f"trained on {model.examples:,} examples of {len(model.labels)} categories "
        f"in {time.perf_counter() - started:.1f} s → {workorders.model_path(settings)}"
    )


@app.command("evaluate")
def evaluate_command(source: Path = EXAMPLES, folds: int = typer.Option(5, min=2, max=20)) -> None:
    """Macro-F1 of the classifier on labelled history by stratified k-fold cross-validation."""
    from shgov.workorders import classifier

    try:
        texts, labels = classifier.read_examples(source.name, source.read_bytes())
        score = classifier.cross_validated_macro_f1(texts, labels, folds)
    except (DomainError, ValueError) as exc:
        fail(f"not evaluated: {getattr(exc, 'message', exc)}", 2)
    console.print(
        f"macro-F1 {score:.3f} ({folds}-fold cross-validation, {len(texts):,} examples, {len(set(labels))} categories)"
    )


@app.command("escalate")
def escalate_command() -> None:
    """Raise every overdue order one level (run it every few minutes)."""
    from shgov.workorders import service as workorders

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session(write=True) as session:
            raised = workorders.escalate_overdue(session, settings)
        console.print(f"escalated {len(raised):,} overdue orders")
    finally:
        db.dispose()


@app.command("analyse")
def analyse_command(
    source: Path = typer.Option(..., "--from", exists=True, dir_okay=False, help="CSV: id, title, body, submitted_at."),
    train_from: Path | None = typer.Option(None, "--train-from", exists=True, dir_okay=False, help="Labelled CSV."),
    hours: float = typer.Option(72, min=1, help="Duplicates arrive within this many hours of one another."),
    threshold: float = typer.Option(0.5, min=0.05, max=1.0, help="Text similarity of duplicates."),
    area_pattern: str = typer.Option(r"[A-Z]\d+区|[\u4e00-\u9fa5]{2,3}区", help="How an area is named in the text."),
    min_count: int = typer.Option(5, min=2, help="Orders of one category in one area in one week to count as hot."),
) -> None:
    """Look at message history without places: near-duplicate groups, and hot spots by area named in the text
    × category (classified by a model trained from ``--train-from``, else the platform's) × ISO week."""
    import csv
    import io
    import re
    from collections import Counter
    from datetime import datetime

    from shgov.workorders import classifier
    from shgov.workorders import service as workorders

    settings = load_settings()
    rows = list(csv.DictReader(io.StringIO(source.read_text(encoding="utf-8-sig"))))
    if not rows or not {"id", "body", "submitted_at"} <= set(rows[0]):
        fail("the file needs the columns id, body and submitted_at (title is optional)", 2)
    records = []
    for row in rows:
        try:
            at = datetime.fromisoformat(row["submitted_at"])
        except ValueError:
            fail(f"row {row['id']}: submitted_at {row['submitted_at']!r} is not a date-time", 2)
        records.append((row["id"], at, f"{row.get('title', '')} {row['body']}"))
    groups = workorders.near_duplicate_groups(records, hours, threshold)
    repeated = sum(len(g) for g in groups)
    console.print(
        f"{len(records):,} messages; {len(groups):,} groups of near-duplicates (similarity ≥ {threshold}, "
        f"within {hours:g} h) holding {repeated:,} messages; largest groups: "
        + ", ".join(str(len(g)) for g in groups[:10])
    )
    if train_from is not None:
        texts, labels = classifier.read_examples(train_from.name, train_from.read_bytes())
        model: classifier.Classifier | None = classifier.train(texts, labels)
    else:
        model = workorders.MODELS.get(settings)
    if model is None:
        fail("no classifier: train one (shgov workorders train) or pass --train-from", 2)
    pattern = re.compile(area_pattern)
    predicted = model.pipeline.predict([text for _id, _at, text in records])
    cells: Counter[tuple[str, str, str]] = Counter()
    for (_id, at, text), category in zip(records, predicted, strict=True):
        named = pattern.search(text)
        if named:
            year, number, _ = at.isocalendar()
            cells[(named.group(0), str(category), f"{year}-W{number:02d}")] += 1
    hot = [(key, n) for key, n in cells.most_common() if n >= min_count]
    console.print(f"{len(hot):,} hot spots (area × category × week with ≥ {min_count} messages); the largest:")
    for (area, category, week), n in hot[:15]:
        console.print(f"  {week}  {area:<8} {category:<12} {n}")
