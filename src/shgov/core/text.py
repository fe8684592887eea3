"""Chinese (and English) search words of a text, for the in-database and in-memory search indexes.

Text is cut into words by jieba in search mode (a long word also yields its parts, so 婚姻登记 is found
by 婚姻 and by 登记); identifiers such as ``id_number`` yield ``id_number``, ``id`` and ``number``.
"""

from __future__ import annotations

import re
import threading

_WORD = re.compile(r"[\w\u4e00-\u9fff]+", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Words too common to help (single characters are dropped anyway).
_STOP = frozenset({"信息", "数据", "the", "of", "and", "a"})
_jieba_lock = threading.Lock()
_jieba_ready = False


def _cut(text_: str) -> list[str]:
    global _jieba_ready
    import jieba  # imported on first use: its dictionary takes a second to load

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(60)
                jieba.initialize()
                _jieba_ready = True
    return list(jieba.cut_for_search(text_))


def tokens(text_: str, *, keep_common: bool = False) -> list[str]:
    """The search words of a text, lower-cased, in order, without duplicates."""
    words: list[str] = []
    for chunk in _WORD.findall(text_.lower()):
        if _CJK.search(chunk):
            words.extend(w for w in _cut(chunk) if len(w) > 1 or not _CJK.match(w))
        else:
            words.append(chunk)
            if "_" in chunk:
                words.extend(p for p in chunk.split("_") if p)
    seen: set[str] = set()
    out = []
    for word in words:
        if word not in seen and (keep_common or word not in _STOP):
            seen.add(word)
            out.append(word)
    return out


def query_tokens(q: str) -> list[str]:
    """The words a query must match; a query of only common words keeps them."""
    found = tokens(q)
    return found or tokens(q, keep_common=True)
