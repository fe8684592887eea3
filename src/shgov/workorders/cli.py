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
