"""Training-time augmentation: harm wrapped in benign context, so position never hides it.

A moderation model sees a threat after a paragraph about the weather as often as it sees one alone. The
sources mostly hold short, single-topic posts, so a model trained on them alone learns that harm *is* the
whole text. `with_benign_context` adds copies of training examples with clean sentences from *other*
training examples before and/or after them:

- a copy keeps every label its original knows (the added sentences are clean on all the categories their
  own source judged, so they add no harm), and
- clean originals get clean context too, so length and context alone never become evidence of harm.

Only training examples are used as context and as originals: validation and test texts never appear in
an augmented example. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import replace

from moderation.training.data import Example
from moderation.windows import sentences

MIN_KNOWN_FOR_CLEAN = 4  # a context sentence comes from a text whose source judged at least this many categories


def benign_sentences(train: list[Example], limit: int = 20000, seed: int = 0) -> list[str]:
    """Sentences of training texts that every judged category calls clean, 4 to 40 words long."""
    pool = []
    for ex in train:
        known = [v for v in ex.labels.values() if v is not None]
        if len(known) < MIN_KNOWN_FOR_CLEAN or any(v > 0 for v in known):
            continue
        for s in sentences(ex.text):
            if 4 <= len(s.split()) <= 40:
                pool.append(s)
    rng = random.Random(seed)
    rng.shuffle(pool)
    return pool[:limit]


def with_benign_context(train: list[Example], fraction: float = 0.2, max_sentences: int = 4, seed: int = 0,
                        max_words: int = 60, window_words: int = 85) -> list[Example]:
    """New examples: `fraction` of the short training examples, each with 1..max_sentences clean sentences
    placed before, after, or around it. Training reads the first 128 tokens, so originals longer than
    `max_words` words are not used and the context is cut to keep the whole text within `window_words`
    words (about 110 tokens): the original's harm always stays inside the window."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    pool = benign_sentences(train, seed=seed)
    if not pool:
        return []
    rng = random.Random(seed + 1)
    out = []
    for ex in train:
        if len(ex.text.split()) > max_words or rng.random() >= fraction:
            continue
        budget = window_words - len(ex.text.split())
        context = []
        for _ in range(rng.randint(1, max_sentences)):
            s = rng.choice(pool)
            if len(s.split()) <= budget:
                context.append(s)
                budget -= len(s.split())
        if not context:
            continue
        k = len(context)
        where = rng.choice(("before", "after", "around"))
        if where == "before":
            text = " ".join([*context, ex.text])
        elif where == "after":
            text = " ".join([ex.text, *context])
        else:
            cut = rng.randint(0, k)
            text = " ".join([*context[:cut], ex.text, *context[cut:]])
        out.append(replace(ex, id=f"{ex.id}+context", text=text, annotators=[], labels=dict(ex.labels)))
    return out
