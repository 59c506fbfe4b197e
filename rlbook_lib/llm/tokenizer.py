r"""A word-level tokenizer: one token per word, plus three special tokens.

A language model reads and writes integers, not text. A tokenizer maps a text to
a sequence of token ids from a fixed vocabulary and back. Ours splits on white
space and gives every word of the book's language (:mod:`rlbook_lib.llm.grammar`)
its own id. Real tokenizers split words into sub-word pieces learned from data
(byte-pair encoding, WordPiece, unigram models), so that any string, even a
misspelled one, maps to known tokens; our language is closed, so whole words do.

=========  ====  ========================================================
token      id    role
=========  ====  ========================================================
``<pad>``  0     PAD: fills a sequence after its end; never predicted
``<bos>``  1     BOS: begins every sequence; the first state of an episode
``<eos>``  2     EOS: ends a sentence; generating it ends the episode
=========  ====  ========================================================

Example::

    tok = tokenizer.Tokenizer(("the", "film", "was", "good", "."))
    ids = tok.encode("the film was good .")   # [1, 3, 4, 5, 6, 7, 2]
    tok.decode(ids)                           # 'the film was good .'
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from rlbook_lib.llm import _checks

SPECIALS = ("<pad>", "<bos>", "<eos>")
"""The special tokens, in id order."""
PAD, BOS, EOS = 0, 1, 2
"""Ids of the special tokens."""


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """Word-level tokenizer over a fixed list of words (the specials come first)."""

    words: tuple[str, ...]
    """The language's words; word i gets the id ``len(SPECIALS) + i``."""

    def __post_init__(self):
        if not isinstance(self.words, tuple) or not all(isinstance(w, str) for w in self.words):
            raise ValueError(f"words must be a tuple of str, got {self.words!r}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("words must be distinct")
        bad = [w for w in self.words if not w or w.split() != [w] or w in SPECIALS]
        if bad:
            raise ValueError(f"words must be non-empty, without white space and not special: {bad!r}")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.vocab)})

    @property
    def vocab(self) -> tuple[str, ...]:
        """All tokens in id order: the specials, then the words."""
        return SPECIALS + self.words

    @property
    def vocab_size(self) -> int:
        """V, the number of token ids."""
        return len(SPECIALS) + len(self.words)

    def token_id(self, word: str) -> int:
        """The id of one word; ``ValueError`` for a word outside the vocabulary."""
        try:
            return self._ids[word]
        except KeyError:
            raise ValueError(f"{word!r} is not in the vocabulary") from None

    def encode(self, text: str | Sequence[str], bos: bool = True, eos: bool = True) -> list[int]:
        """Ids of a text (a string split on white space, or a list of words),
        framed by BOS and EOS unless switched off."""
        words = text.split() if isinstance(text, str) else list(text)
        ids = [self.token_id(w) for w in words]
        return [BOS] * bos + ids + [EOS] * eos

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence of ids: stops at the first EOS, drops BOS and PAD."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        _checks.check_tokens("ids", ids, self.vocab_size)
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.vocab[i])
        return " ".join(words)

    def encode_batch(self, texts: Sequence[str], length: int, eos: bool = True) -> np.ndarray:
        """``[n, length]`` int32 ids, one text per row, each from BOS, padded with PAD.

        With ``eos=False`` the rows are prompts: the model continues them.
        """
        rows = [self.encode(t, eos=eos) for t in texts]
        longest = max((len(r) for r in rows), default=0)
        if longest > length:
            raise ValueError(f"a text needs {longest} tokens, more than length={length}")
        out = np.full((len(rows), length), PAD, np.int32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def decode_batch(self, tokens) -> list[str]:
        """:meth:`decode` of every row of a ``[n, L]`` array."""
        return [self.decode(row) for row in np.asarray(tokens)]
