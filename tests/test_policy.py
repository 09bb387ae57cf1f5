"""The classifier-generator on tiny random BERTs: shapes, proposals, log-probs, training, persistence."""

import numpy as np
import pytest
import torch

from moderation.proposals import proposals_from_logits
from moderation.training.policy import PolicyModel, bernoulli_kl, label_set_log_prob
from tests.conftest import make_tiny_policy

TEXTS = ["you are a wonderful person", "I will hurt you", "win a free prize now, text 8888", "the vote was rigged"]


def test_probabilities_have_one_column_per_category(tiny_policy, taxonomy):
    p = tiny_policy.predict_proba(TEXTS)
    assert p.shape == (4, len(taxonomy)) and np.all((p > 0) & (p < 1))


def test_log_prob_matches_the_formula(tiny_policy):
    tiny_policy.eval()  # dropout off: log_prob follows the module's mode, as RL uses it
    y = np.array([[1, 0, 0, 0, 0, 0, 1]] * 4)
    lp = tiny_policy.log_prob(TEXTS, y).detach().numpy()
    p = tiny_policy.predict_proba(TEXTS)
    expected = (y * np.log(p) + (1 - y) * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(lp, expected, rtol=1e-4, atol=1e-4)


def test_log_prob_is_differentiable(tiny_policy):
    lp = tiny_policy.log_prob(TEXTS[:2], np.ones((2, 7)))
    lp.sum().backward()
    assert tiny_policy.head.weight.grad is not None and tiny_policy.head.weight.grad.abs().sum() > 0


def test_propose_returns_k_distinct_sets_greedy_first(tiny_policy):
    props = tiny_policy.propose(TEXTS, k=5, temperature=1.0, seed=1)
    tiny_policy.eval()
    assert len(props) == 4
    p = tiny_policy.predict_proba(TEXTS)
    for i, ps in enumerate(props):
        assert len(ps) == 5 and len({x.labels for x in ps}) == 5
        assert ps[0].kind == "greedy" and ps[0].labels == tuple(int(v) for v in p[i] >= 0.5)
        lp = tiny_policy.log_prob([TEXTS[i]] * 5, np.array([x.labels for x in ps])).detach().numpy()
        np.testing.assert_allclose([x.log_prob for x in ps], lp, rtol=1e-4, atol=1e-4)


def test_confident_policy_still_gives_distinct_proposals():
    logits = np.array([[20.0, -20.0, -20.0, 15.0]])  # sampling alone would repeat the greedy set
    props = proposals_from_logits(logits, k=4, seed=0)[0]
    assert len({p.labels for p in props}) == 4
    assert props[0].labels == (1, 0, 0, 1)


def test_propose_validates_arguments(tiny_policy):
    with pytest.raises(ValueError):
        tiny_policy.propose(TEXTS, k=0)
    with pytest.raises(ValueError):
        tiny_policy.propose(TEXTS, temperature=0)


def test_exact_bernoulli_kl_matches_monte_carlo():
    torch.manual_seed(0)
    zp, zq = torch.randn(1, 7) * 2, torch.randn(1, 7) * 2
    exact = bernoulli_kl(zp, zq).item()
    y = torch.bernoulli(torch.sigmoid(zp).expand(200_000, 7))
    mc = (label_set_log_prob(zp.expand(200_000, 7), y) - label_set_log_prob(zq.expand(200_000, 7), y)).mean().item()
    assert abs(exact - mc) < 0.05 * max(1.0, exact)
    assert bernoulli_kl(zp, zp).item() == pytest.approx(0.0, abs=1e-6)


def test_long_text_is_scored_as_max_over_windows(taxonomy):
    policy = make_tiny_policy(taxonomy.names, max_length=16, stride=4)
    benign = "the weather is nice today and we walk in the park " * 20
    tail = "I will find you and hurt you badly"
    w = policy.windows([benign + tail])
    assert len(w.ids) > 5  # many overlapping windows
    whole = policy.predict_proba([benign + tail])[0]
    last_window = policy.windows([benign + tail]).ids[-1]
    per_window = []
    for ids in w.ids:
        t_ids = torch.from_numpy(ids)[None]
        per_window.append(policy.eval()(t_ids, torch.ones_like(t_ids)).detach().numpy()[0])
    np.testing.assert_allclose(whole, np.max(per_window, axis=0), rtol=1e-5)
    assert len(last_window) >= 3


def test_save_and_load_round_trip(tmp_path, tiny_policy):
    tiny_policy.log_temperature.fill_(0.3)
    tiny_policy.save(tmp_path / "ckpt")
    again = PolicyModel.load(tmp_path / "ckpt")
    np.testing.assert_allclose(again.predict_proba(TEXTS), tiny_policy.predict_proba(TEXTS), rtol=1e-5)


def test_lora_trains_only_adapters_and_merges(tmp_path, taxonomy):
    policy = make_tiny_policy(taxonomy.names, finetune="lora")
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # make the adapters matter
    before = policy.predict_proba(TEXTS)
    policy.save(tmp_path / "lora")  # saved merged
    merged = PolicyModel.load(tmp_path / "lora")
    assert not merged.is_lora
    np.testing.assert_allclose(merged.predict_proba(TEXTS), before, rtol=1e-4, atol=1e-5)


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy_config.json is missing"):
        (tmp_path / "model.safetensors").write_bytes(b"")
        PolicyModel.load(tmp_path)


def test_one_window_means_one_segment_per_text(tiny_policy):
    long = "This is fine. " * 100 + "Another sentence here."
    assert len(tiny_policy.windows([long, "short"], max_windows=1).ids) == 2
    w = tiny_policy.windows([long, "short"])
    assert len(w.ids) > 2 and set(w.owner.tolist()) == {0, 1}
