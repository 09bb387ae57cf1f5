"""Label-set proposals from calibrated logits, in numpy (no torch): shared by the policy, the review
queue and the runtime side.

A proposal is a label set y in {0,1}^C with its log-probability under independent Bernoullis:
    log pi(y|x) = sum_c y_c log p_c + (1 - y_c) log(1 - p_c)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Proposal:
    labels: tuple[int, ...]  # y in {0,1}^C, in taxonomy order
    log_prob: float  # log pi(y|x) under the policy at temperature 1
    kind: str  # "greedy" or "sampled"

    def names(self, categories: list[str]) -> list[str]:
        return [c for c, y in zip(categories, self.labels) if y]


def _np_log_prob(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(y * -np.logaddexp(0, -logits) + (1 - y) * -np.logaddexp(0, logits)))


def proposals_from_logits(logits: np.ndarray, k: int, temperature: float = 1.0, thresholds: np.ndarray | None = None,
                          seed: int = 0, max_draws: int = 64) -> list[list[Proposal]]:
    """Greedy + sampled distinct label sets from calibrated logits (numpy; no model needed)."""
    rng = np.random.default_rng(seed)
    n, c = logits.shape
    probs = 1.0 / (1.0 + np.exp(-logits))
    cut = np.full(c, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    out = []
    for i in range(n):
        greedy = tuple(int(v) for v in (probs[i] >= cut))
        seen = {greedy}
        props = [Proposal(greedy, _np_log_prob(logits[i], np.array(greedy)), "greedy")]
        p_t = 1.0 / (1.0 + np.exp(-logits[i] / temperature))
        draws = 0
        while len(props) < k and draws < max_draws:
            draws += 1
            y = tuple(int(v) for v in (rng.random(c) < p_t))
            if y not in seen:
                seen.add(y)
                props.append(Proposal(y, _np_log_prob(logits[i], np.array(y)), "sampled"))
        if len(props) < k:
            # Confident policy: add the most likely unseen sets, flipping the least certain categories first.
            for j in np.argsort(np.abs(logits[i])):
                y = list(greedy)
                y[j] = 1 - y[j]
                y = tuple(y)
                if y not in seen:
                    seen.add(y)
                    props.append(Proposal(y, _np_log_prob(logits[i], np.array(y)), "sampled"))
                if len(props) >= k:
                    break
        out.append(props)
    return out
