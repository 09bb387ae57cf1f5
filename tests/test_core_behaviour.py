"""Small, exact statements of behaviour the loop relies on — each one written so that a plausible wrong
edit of the code makes it fail (scripts/mutations.py applies those edits and checks that these tests notice).
"""

import asyncio

import numpy as np
import pytest
import torch

from labeling.queue import QueueItem, select
from moderation.training.data import Example, _merge
from moderation.training.rl import RewardHackingGuard, ppo_loss

# ---------------------------------------------------------------- RL objective


def _setup(seed=0, b=4, g=6, c=7):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, generator=gen)
    y = torch.bernoulli(torch.full((b, g, c), 0.5), generator=gen)
    return z, y


def test_the_rl_loss_carries_the_kl_leash():
    from moderation.training.policy import bernoulli_kl, label_set_log_prob

    z, y = _setup()
    ref = z + 1.0  # the reference policy differs
    logp_old = label_set_log_prob(z, y).detach()
    adv = torch.zeros(y.shape[:2])  # no advantage: only the leash is left
    loss, pg, kl = ppo_loss(z, y, logp_old, adv, ref, clip=0.2, kl_beta=0.5)
    expected_kl = bernoulli_kl(z, ref).mean()
    assert kl.item() == pytest.approx(expected_kl.item()) and kl.item() > 0.01
    assert pg.item() == pytest.approx(0.0, abs=1e-7)
    assert loss.item() == pytest.approx(0.5 * expected_kl.item())
    _, _, kl_same = ppo_loss(z, y, logp_old, adv, z.clone(), clip=0.2, kl_beta=0.5)
    assert kl_same.item() == pytest.approx(0.0, abs=1e-6)


def test_the_policy_gradient_is_clipped():
    """Once the ratio has left [1 - clip, 1 + clip] in the direction the advantage favours, the sample gives
    no more gradient; inside the band it does."""
    from moderation.training.policy import label_set_log_prob

    z, y = _setup(b=1, g=1)
    logp = label_set_log_prob(z, y)
    adv = torch.ones(1, 1)
    for shift, clipped in ((-1.0, True), (-0.01, False)):  # ratio = exp(-shift): e (clipped) vs ~1.01 (not)
        zz = z.clone().requires_grad_(True)
        loss, _, _ = ppo_loss(zz, y, (logp + shift).detach(), adv, zz.detach(), clip=0.2, kl_beta=0.0)
        loss.backward()
        grad = zz.grad.abs().sum().item()
        assert (grad == 0.0) is clipped, (shift, grad)


def test_reward_hacking_guard_stops_after_patience_bad_evaluations():
    ev = lambda rm, u: {"heldout_rm_reward": rm, "heldout_utility": u}  # noqa: E731
    guard = RewardHackingGuard(2, ev(0.0, -1.0))
    assert guard.update(ev(0.5, -1.2)) is False  # one evaluation of hacking: wait
    assert guard.update(ev(0.9, -1.5)) is True  # two in a row: stop
    guard = RewardHackingGuard(2, ev(0.0, -1.0))
    assert guard.update(ev(0.5, -1.2)) is False
    assert guard.update(ev(0.6, -1.1)) is False  # utility recovered: the count resets
    assert guard.update(ev(0.7, -1.3)) is False
    assert RewardHackingGuard(1, ev(0.0, -1.0)).update(ev(-0.1, -1.5)) is False  # both fell: not hacking


# ---------------------------------------------------------------- reward model


def test_reward_anchor_holds_the_beliefs_near_their_start():
    from moderation.training.reward import RewardConfig, train_reward

    rng = np.random.default_rng(0)
    n, d, c = 60, 8, 3
    emb = rng.normal(size=(n, d)).astype(np.float32)
    idx = np.arange(n)
    chosen = rng.integers(0, 2, (n, c)).astype(np.float32)
    rejected = 1 - chosen

    def drift(anchor: float) -> float:
        cfg = RewardConfig(embed_dim=d, n_categories=c, cost_fn=(1.0,) * c, cost_fp=(1.0,) * c, epochs=30, anchor=anchor)
        model = train_reward(emb, idx, chosen, rejected, cfg, log=lambda *a: None)
        torch.manual_seed(cfg.seed)
        from moderation.training.reward import RewardModel

        start = RewardModel(cfg)
        return sum(((p - p0) ** 2).sum().item() for p, p0 in zip(model.belief.parameters(), start.belief.parameters()))

    free, anchored = drift(0.0), drift(10.0)
    assert free > 0.05 and anchored < 0.2 * free, (free, anchored)


# ---------------------------------------------------------------- review queue


def test_disagreement_queue_puts_the_most_contested_items_first():
    thresholds = np.full(7, 0.5)
    contested = [QueueItem(f"c{i}", "t", np.full(7, 0.5)) for i in range(10)]
    settled = [QueueItem(f"s{i}", "t", np.full(7, 0.01)) for i in range(90)]
    chosen = select(settled[:45] + contested + settled[45:], 10, "disagreement", thresholds, k=4, seed=0)
    assert {it.item_id for it in chosen} == {it.item_id for it in contested}


# ---------------------------------------------------------------- data


def test_duplicates_average_their_labels_and_keep_what_only_one_knows():
    a = Example("a", "same text", "s1", {"toxic": 1.0, "hate": None, "spam": 0.0})
    b = Example("b", "same text", "s2", {"toxic": 0.0, "hate": 1.0, "spam": None}, identities=("women",))
    _merge(a, b)
    assert a.labels == {"toxic": 0.5, "hate": 1.0, "spam": 0.0}
    assert a.identities == ("women",)


# ---------------------------------------------------------------- serving


def test_micro_batcher_scores_batch_mates_alone_when_one_request_breaks_the_batch():
    from moderation.serve import MicroBatcher

    def score(texts):
        if "poison" in texts:
            raise ValueError("cannot score poison")
        return np.array([[float(len(t))] for t in texts])

    async def main():
        batcher = MicroBatcher(score, max_batch=64, max_wait_ms=50)
        batcher.start()
        try:
            return await asyncio.gather(batcher.score(["ab"]), batcher.score(["poison"]), batcher.score(["abcd", "x"]),
                                        return_exceptions=True)
        finally:
            await batcher.stop()

    good1, bad, good2 = asyncio.run(main())
    assert good1.tolist() == [[2.0]] and good2.tolist() == [[4.0], [1.0]]
    assert isinstance(bad, ValueError)
