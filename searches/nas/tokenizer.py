"""A small offline tokenizer for the text space.

Words (or characters) are counted on the training texts; the most frequent
ones get ids, everything else maps to ``UNK_ID``. The whole state is a plain
dict (``to_dict`` / ``from_dict``), so it travels inside a checkpoint that
``torch.load(..., weights_only=True)`` can open.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

import torch

PAD_ID = 0
UNK_ID = 1
PAD, UNK = "<pad>", "<unk>"
LEVELS = ("word", "char")
# A word is a run of letters/digits/underscores; any other non-space character stands alone.
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Tokenizer:
    def __init__(self, level: str = "word", max_vocab: int = 10000, min_freq: int = 1,
                 lowercase: bool = True):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if max_vocab < 2:
            raise ValueError("max_vocab counts <pad> and <unk>, so it must be at least 2")
        self.level = level
        self.max_vocab = int(max_vocab)
        self.min_freq = int(min_freq)
        self.lowercase = bool(lowercase)
        self.vocab: list[str] = [PAD, UNK]
        self._ids = {token: i for i, token in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        return list(text) if self.level == "char" else _WORD.findall(text)

    def fit(self, texts: Iterable[str]) -> "Tokenizer":
        counts = Counter()
        for text in texts:
            counts.update(self.tokens(text))
        # Ties broken by the token itself, so the same texts always give the same ids.
        ranked = sorted((t for t, n in counts.items() if n >= self.min_freq and t not in (PAD, UNK)),
                        key=lambda t: (-counts[t], t))
        self.vocab = [PAD, UNK] + ranked[: self.max_vocab - 2]
        self._ids = {token: i for i, token in enumerate(self.vocab)}
        return self

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        ids = [self._ids.get(token, UNK_ID) for token in self.tokens(text)]
        if max_len is not None:
            ids = ids[:max_len] + [PAD_ID] * (max_len - len(ids))
        return ids

    def encode_batch(self, texts: Iterable[str], max_len: int) -> torch.Tensor:
        """A ``(len(texts), max_len)`` LongTensor: truncated at the end, padded with ``PAD_ID``."""
        rows = [self.encode(text, max_len) for text in texts]
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), max_len)

    def decode(self, ids: Iterable[int]) -> str:
        tokens = [self.vocab[i] if 0 <= i < len(self.vocab) else UNK for i in map(int, ids)]
        tokens = [t for t in tokens if t != PAD]
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    def to_dict(self) -> dict:
        return {"level": self.level, "max_vocab": self.max_vocab, "min_freq": self.min_freq,
                "lowercase": self.lowercase, "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, state: dict) -> "Tokenizer":
        tok = cls(state["level"], state["max_vocab"], state["min_freq"], state["lowercase"])
        tok.vocab = list(state["vocab"])
        if tok.vocab[:2] != [PAD, UNK]:
            raise ValueError("a tokenizer vocabulary starts with <pad>, <unk>")
        tok._ids = {token: i for i, token in enumerate(tok.vocab)}
        return tok
