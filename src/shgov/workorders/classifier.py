"""The work-order classifier: character and word n-grams, a linear model, calibrated probabilities.

Trained from labelled history (text, category); returns the top categories with a confidence that can be
compared with a threshold (below it an order goes to the human triage queue)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from shgov.core import text as core_text
from shgov.core.errors import InvalidError
from shgov.core.i18n import N_

TEXT_COLUMNS = ("text", "description", "留言详情", "body")
TITLE_COLUMNS = ("title", "留言主题")
LABEL_COLUMNS = ("category", "label", "一级分类", "category_code")


# A message is classified by its first characters: what the problem is comes first, and the time a long
# letter takes to cut into words stays bounded (the cross-validated macro-F1 did not move beyond noise).
READ_CHARS = 512


def _clip(value: str) -> str:
    return value[:READ_CHARS]


def _clip_lower(value: str) -> str:
    return value[:READ_CHARS].lower()


def _words(value: str) -> list[str]:
    return core_text.tokens(value)


def _pipeline(calibrate_folds: int) -> Pipeline:
    chars = TfidfVectorizer(
        analyzer="char_wb", preprocessor=_clip_lower, ngram_range=(1, 3), sublinear_tf=True, min_df=1
    )
    words = TfidfVectorizer(
        preprocessor=_clip, tokenizer=_words, token_pattern=None, lowercase=False, sublinear_tf=True
    )
    features = FeatureUnion([("chars", chars), ("words", words)])
    if calibrate_folds >= 2:
        model: Any = CalibratedClassifierCV(LinearSVC(C=0.5), method="sigmoid", cv=calibrate_folds)
    else:  # too few examples of some class to calibrate by cross-validation: logistic probabilities
        model = LogisticRegression(C=10.0, max_iter=2000)
    return Pipeline([("features", features), ("model", model)])


def _expit(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return np.asarray(e / e.sum())


@dataclass
class _Terms:
    """One vectorizer of the feature union, unrolled: its analyzer, vocabulary and idf weights."""

    analyze: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray
    sublinear: bool
    offset: int  # where its columns start in the union


@dataclass
class _Fold:
    """One calibrated classifier: a linear decision per class and the sigmoid that calibrates it."""

    coef: np.ndarray  # (scores, features)
    intercept: np.ndarray
    columns: np.ndarray  # the probability column of each score
    slope: np.ndarray
    bias: np.ndarray


class _Compiled:
    """The trained pipeline evaluated for one text without scikit-learn's per-call checks: the same
    tf-idf weights, linear scores and calibration, so the probabilities equal ``predict_proba``'s
    (a test holds them to it) in a fraction of the time a single hotline text needs."""

    def __init__(self, pipeline: Pipeline) -> None:
        offset = 0
        self.terms: list[_Terms] = []
        for _name, vectorizer in pipeline.named_steps["features"].transformer_list:
            vocabulary = vectorizer.vocabulary_
            self.terms.append(
                _Terms(vectorizer.build_analyzer(), vocabulary, vectorizer.idf_, vectorizer.sublinear_tf, offset)
            )
            offset += len(vocabulary)
        model = pipeline.named_steps["model"]
        self.classes = np.asarray(model.classes_)
        self.folds: list[_Fold] = []
        self.logistic = isinstance(model, LogisticRegression)
        if self.logistic:
            self.folds.append(
                _Fold(model.coef_, model.intercept_, np.arange(len(self.classes)), np.ones(0), np.ones(0))
            )
            return
        for calibrated in model.calibrated_classifiers_:
            estimator = calibrated.estimator
            columns = np.searchsorted(self.classes, estimator.classes_)
            if len(self.classes) == 2:
                columns = np.array([1])  # a binary model scores the second class only
            slope = np.array([c.a_ for c in calibrated.calibrators])
            bias = np.array([c.b_ for c in calibrated.calibrators])
            self.folds.append(_Fold(estimator.coef_, estimator.intercept_, columns, slope, bias))

    def features(self, value: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero tf-idf features of a text: column numbers and weights (each part l2-normalised)."""
        columns: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for terms in self.terms:
            vocabulary = terms.vocabulary
            known = [(i, n) for t, n in Counter(terms.analyze(value)).items() if (i := vocabulary.get(t)) is not None]
            if not known:
                continue
            pairs = np.array(known, dtype=np.float64)
            index = pairs[:, 0].astype(np.intp)
            tf = pairs[:, 1]
            if terms.sublinear:
                tf = np.log(tf) + 1.0
            weight = tf * terms.idf[index]
            weight /= np.sqrt(np.dot(weight, weight))
            columns.append(index + terms.offset)
            weights.append(weight)
        if not columns:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        return np.concatenate(columns), np.concatenate(weights)

    def probabilities(self, value: str) -> np.ndarray:
        """The probability of each class, in the order of ``classes``."""
        columns, weights = self.features(value)
        n = len(self.classes)
        total = np.zeros(n)
        for fold in self.folds:
            scores = fold.coef[:, columns] @ weights + fold.intercept
            if self.logistic:
                if n == 2:
                    positive = _expit(scores[0])
                    return np.array([1.0 - positive, positive])
                return _softmax(scores)
            proba = np.zeros(n)
            proba[fold.columns] = _expit(-(fold.slope * scores + fold.bias))
            if n == 2:
                proba[0] = 1.0 - proba[1]
            else:
                denominator = proba.sum()
                proba = proba / denominator if denominator != 0 else np.full(n, 1.0 / n)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            total += proba
        return total / len(self.folds)


@dataclass
class Classifier:
    """A trained model and the labels it knows."""

    pipeline: Pipeline
    labels: list[str]
    examples: int
    _compiled: _Compiled | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # rebuilt after loading: it holds the analyzers' closures
        return state

    @property
    def compiled(self) -> _Compiled:
        """The pipeline unrolled for classifying one text quickly."""
        if getattr(self, "_compiled", None) is None:
            self._compiled = _Compiled(self.pipeline)
        assert self._compiled is not None  # noqa: S101 - set just above
        return self._compiled

    @property
    def classes(self) -> np.ndarray:
        """The categories, in the order of the probability columns."""
        return self.compiled.classes

    def probabilities(self, values: list[str]) -> np.ndarray:
        """Calibrated probabilities, one row per text: a few texts one by one on the unrolled model,
        many texts through the vectorised pipeline."""
        if len(values) > 8:
            return np.asarray(self.pipeline.predict_proba(values))
        compiled = self.compiled
        return np.array([compiled.probabilities(v) for v in values]).reshape(len(values), len(compiled.classes))

    def top(self, value: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most likely categories with their probabilities, most likely first."""
        probabilities = self.probabilities([value])[0]
        order = np.argsort(probabilities)[::-1][:k]
        return [(str(self.classes[i]), float(probabilities[i])) for i in order]


def train(texts: list[str], labels: list[str]) -> Classifier:
    """Fit the classifier (needs at least two categories)."""
    if len(texts) != len(labels) or not texts:
        raise InvalidError(N_("no training examples"), field="file")
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidError(N_("training needs examples of at least two categories"), field="category")
    pipeline = _pipeline(min(3, min(counts.values())))
    pipeline.fit(texts, labels)
    return Classifier(pipeline, sorted(counts), len(texts))


def cross_validated_macro_f1(texts: list[str], labels: list[str], folds: int = 5, seed: int = 0) -> float:
    """Macro-F1 of the classifier by stratified k-fold cross-validation (out-of-fold predictions)."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.empty(len(labels), dtype=object)
    x, y = np.array(texts, dtype=object), np.array(labels, dtype=object)
    for train_rows, test_rows in splitter.split(x, y):
        model = train(list(x[train_rows]), list(y[train_rows]))
        predicted[test_rows] = model.pipeline.predict(list(x[test_rows]))
    return float(f1_score(y, predicted, average="macro"))


def save(model: Classifier, path: Path) -> None:
    """Store the model (a file of the platform's own data folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_suffix(".tmp")
    joblib.dump(model, draft)
    draft.replace(path)


def load(path: Path) -> Classifier | None:
    """The stored model, or None when none was trained."""
    if not path.exists():
        return None
    model = joblib.load(path)
    return model if isinstance(model, Classifier) else None


def read_examples(name: str, data: bytes) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV or XLSX with a text (or title + body) column and a category column."""
    if name.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(data), read_only=True).active
        if sheet is None:
            raise InvalidError(N_("the workbook has no sheet"), field="file")
        rows = [[("" if c is None else str(c)) for c in row] for row in sheet.iter_rows(values_only=True)]
        header, body = rows[0], rows[1:]
        records = [dict(zip(header, row, strict=False)) for row in body]
    else:
        try:
            content = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidError(N_("the file is not UTF-8 text"), field="file") from exc
        records = list(csv.DictReader(io.StringIO(content)))
        header = list(records[0]) if records else []
    text_column = next((c for c in TEXT_COLUMNS if c in header), None)
    label_column = next((c for c in LABEL_COLUMNS if c in header), None)
    if text_column is None or label_column is None:
        raise InvalidError(
            N_(
                "the file needs a text column ({text_columns}) and a category column ({label_columns}); "
                "it has {columns}"
            ),
            field="file",
            text_columns=", ".join(TEXT_COLUMNS),
            label_columns=", ".join(LABEL_COLUMNS),
            columns=", ".join(header),
        )
    title_column = next((c for c in TITLE_COLUMNS if c in header), None)
    texts, labels = [], []
    for i, record in enumerate(records, start=2):
        label = (record.get(label_column) or "").strip()
        value = " ".join(filter(None, [record.get(title_column) if title_column else "", record.get(text_column)]))
        if not label or not value.strip():
            raise InvalidError(N_("row {row} has no text or no category"), field="file", row=i)
        texts.append(value.strip())
        labels.append(label)
    return texts, labels
