"""Reward model and RL on toy problems whose answers are known."""

import pytest
import numpy as np
import torch

from moderation.training.reward import RewardConfig, RewardModel, bradley_terry_loss, pairwise_accuracy, train_reward
from moderation.training.rl import RLConfig, _group_advantages, train_rl
from tests.conftest import make_tiny_policy


def test_bradley_terry_loss_is_the_logsigmoid_of_the_margin():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    expected = -(torch.nn.functional.logsigmoid(torch.tensor(2.0)) + torch.nn.functional.logsigmoid(torch.tensor(0.0))) / 2
    assert torch.isclose(bradley_terry_loss(rc, rr), expected)


def test_reward_model_learns_a_synthetic_preference():
    rng = np.random.default_rng(0)
    n, d, c = 600, 16, 7
    emb = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, c))
    true_reward = lambda i, y: float(y @ (emb[i] @ w))  # noqa: E731
    idx, chosen, rejected = [], [], []
    for _ in range(6000):
        i = rng.integers(n)
        a, b = (rng.random(c) < 0.5).astype(np.float32), (rng.random(c) < 0.5).astype(np.float32)
        if true_reward(i, a) == true_reward(i, b):
            continue
        better, worse = (a, b) if true_reward(i, a) > true_reward(i, b) else (b, a)
        idx.append(i), chosen.append(better), rejected.append(worse)
    idx, chosen, rejected = np.array(idx), np.array(chosen), np.array(rejected)
    train = idx < 500  # held-out texts never seen in training
    model = train_reward(emb, idx[train], chosen[train], rejected[train], RewardConfig(embed_dim=d, n_categories=c, epochs=40),
                         log=lambda *a: None)
    acc = pairwise_accuracy(model, emb, idx[~train], chosen[~train], rejected[~train])
    assert acc > 0.9, acc
    # scoring K label sets against one encoding matches scoring them one by one
    h = torch.from_numpy(emb[:3])
    ys = torch.from_numpy(np.stack([chosen[:4]] * 3))
    batched = model(h, ys)
    single = torch.stack([model(h[i : i + 1].expand(4, -1), ys[i]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_group_advantages_are_normalised_per_text():
    r = torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]])
    a = _group_advantages(r)
    assert torch.allclose(a.mean(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(a.std(1), torch.ones(2), atol=1e-4)


def reward_preferring(target: np.ndarray) -> RewardModel:
    """A reward whose best label set is `target`: the belief "a reviewer marks c" is ~1 on target, ~0 elsewhere."""
    reward = RewardModel(RewardConfig(embed_dim=4, n_categories=len(target)))
    with torch.no_grad():
        reward.belief.weight.zero_()
        reward.belief.bias.copy_(torch.from_numpy(10 * (2 * target - 1)))
    return reward


def toy_rl(taxonomy):
    """Eight toy texts, a tiny policy, and a reward that prefers toxic + violence on every one of them."""
    target = np.array([1, 0, 1, 0, 0, 0, 0], dtype=np.float32)
    texts = [f"toy text number {i}" for i in range(8)]
    return (taxonomy.names, target, make_tiny_policy(taxonomy.names, seed=3), texts, reward_preferring(target),
            np.zeros((8, 4), dtype=np.float32))


def test_rl_config_refuses_bad_values_naming_them():
    from moderation.errors import ConfigError

    for field in ("steps", "batch_texts", "ppo_epochs", "clip", "lr", "eval_every", "hack_patience", "max_length"):
        with pytest.raises(ConfigError, match=field):
            RLConfig(**{field: 0})
    assert RLConfig(group_size=2).group_size == 2  # two samples are enough to compare
    for bad in ({"group_size": 1}, {"kl_beta": -0.1}):
        with pytest.raises(ConfigError, match="group_size must be >= 2 and kl_beta >= 0"):
            RLConfig(**bad)


def test_group_advantages_stay_bounded_when_rewards_barely_differ():
    a = _group_advantages(torch.tensor([[0.0, 2e-6], [5.0, 5.0]]))
    assert a.abs().max() < 1.0  # eps is added to the spread: near-equal rewards give near-zero advantages
    assert torch.equal(a[1], torch.zeros(2))


def test_ppo_loss_clips_the_ratio_on_the_side_the_advantage_points():
    from moderation.training.policy import label_set_log_prob
    from moderation.training.rl import ppo_loss

    z = torch.tensor([[0.3, -1.0], [1.2, 0.4], [-0.5, 0.8], [0.0, 0.0]])
    y = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]], [[0.0, 0.0]]])  # (B, G=1, C)
    ratio = torch.tensor([[1.5], [0.5], [1.5], [0.9]])
    adv = torch.tensor([[1.0], [-1.0], [-1.0], [1.0]])
    logp_old = label_set_log_prob(z, y) - torch.log(ratio)
    loss, pg, kl = ppo_loss(z, y, logp_old, adv, z.clone(), clip=0.2, kl_beta=0.5)
    # min(r*A, clip(r, 0.8, 1.2)*A): 1.2 (capped gain), -0.8 (capped: the clipped loss is the larger one),
    # -1.5 (an unclipped loss), 0.9 (inside the band)
    assert pg.item() == pytest.approx(-(1.2 - 0.8 - 1.5 + 0.9) / 4, abs=1e-5)
    assert kl.item() == pytest.approx(0.0, abs=1e-7) and loss.item() == pytest.approx(pg.item(), abs=1e-6)
    _, _, kl_moved = ppo_loss(z, y, logp_old, adv, z + 1.0, clip=0.2, kl_beta=0.5)
    loss_moved, pg_moved, _ = ppo_loss(z, y, logp_old, adv, z + 1.0, clip=0.2, kl_beta=0.5)
    assert kl_moved.item() > 0 and loss_moved.item() == pytest.approx(pg_moved.item() + 0.5 * kl_moved.item(), abs=1e-6)


def test_reward_hacking_needs_a_strict_rise_and_a_strict_fall():
    from moderation.training.rl import RewardHackingGuard

    start = {"heldout_rm_reward": 1.0, "heldout_utility": 0.5}
    guard = RewardHackingGuard(1, start)
    assert not guard.update({"heldout_rm_reward": 1.0, "heldout_utility": 0.4})  # reward flat: no hacking
    assert not guard.update({"heldout_rm_reward": 2.0, "heldout_utility": 0.4})  # utility flat: no hacking
    assert guard.update({"heldout_rm_reward": 3.0, "heldout_utility": 0.3})
    patient = RewardHackingGuard(2, start)
    assert not patient.update({"heldout_rm_reward": 2.0, "heldout_utility": 0.4})
    assert not patient.update({"heldout_rm_reward": 1.0, "heldout_utility": 0.5})  # a good evaluation resets the count
    assert not patient.update({"heldout_rm_reward": 2.0, "heldout_utility": 0.4})
    assert patient.update({"heldout_rm_reward": 3.0, "heldout_utility": 0.3})


def test_train_reward_and_rl_commands_on_a_real_feedback_store(tmp_path, tiny_checkpoint, examples, taxonomy):
    """`moderate train reward` then `moderate train rl` on judgments made by the simulated reviewers."""
    import json

    from typer.testing import CliRunner

    import cli
    from labeling.simulate import offline_judgments
    from moderation.feedback import FeedbackStore
    from moderation.proposals import proposals_from_logits

    items = [e for e in examples if e.annotators and e.split == "validation"][:80]
    logits = np.random.default_rng(0).normal(size=(len(items), len(taxonomy))) - 1.0
    props = [[p.labels for p in ps] for ps in proposals_from_logits(logits, 4, seed=0)]
    store = tmp_path / "fb"
    FeedbackStore(store, taxonomy.names).add(offline_judgments(items, props, taxonomy, seed=0))
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(e.text.replace("\n", " ") for e in examples[:50] if e.text.strip()) + "\n")
    runner = CliRunner()
    r = runner.invoke(cli.app, ["train", "reward", "--store", str(store), "--policy", str(tiny_checkpoint),
                                "--out", str(tmp_path / "rm"), "--epochs", "5"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    assert report["pairs_train"] > 100 and 0.0 <= report["accuracy_reward_model"] <= 1.0
    assert {"accuracy_hamming_to_greedy", "accuracy_policy_log_prob"} <= set(report)
    r = runner.invoke(cli.app, ["train", "rl", "--policy", str(tiny_checkpoint), "--reward", str(tmp_path / "rm"),
                                "--store", str(store), "--out", str(tmp_path / "rl"), "--pool", str(pool),
                                "--pool-size", "30", "--steps", "3"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rl" / "policy_config.json").is_file() and (tmp_path / "rl" / "rl_curves.png").is_file()
    history = json.loads((tmp_path / "rl" / "rl_history.json").read_text())
    assert history["rows"][0]["kl"] == 0.0 and len(history["rows"]) >= 2


def test_reward_model_round_trips_through_its_files(tmp_path):
    cfg = RewardConfig(embed_dim=4, n_categories=3, cost_fn=(1.0, 2.0, 3.0), cost_fp=(1.0, 1.0, 1.0), epochs=5)
    model = RewardModel(cfg)
    with torch.no_grad():
        model.belief.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    model.save(tmp_path / "rm")
    assert sorted(p.name for p in (tmp_path / "rm").iterdir()) == ["reward.safetensors", "reward_config.json"]
    back = RewardModel.load(tmp_path / "rm")
    assert back.cfg == cfg
    h, y = torch.randn(6, 4), torch.bernoulli(torch.full((6, 3), 0.5))
    assert torch.allclose(back(h, y), model(h, y))


def test_pairs_to_arrays_lines_up_texts_and_label_sets():
    from moderation.feedback import PreferencePair
    from moderation.training.reward import pairs_to_arrays

    pairs = [PreferencePair("k", "i", "b", (1, 0), (0, 0), "r", "ranking"), PreferencePair("k", "i", "a", (0, 1), (1, 1), "r", "correction")]
    idx, chosen, rejected = pairs_to_arrays(pairs, {"a": 0, "b": 1})
    assert idx.tolist() == [1, 0] and idx.dtype == np.int64
    assert chosen.tolist() == [[1, 0], [0, 1]] and rejected.tolist() == [[0, 0], [1, 1]]
    assert chosen.dtype == np.float32 and rejected.dtype == np.float32


def test_reward_model_saves_into_new_nested_folders_and_reads_old_configs(tmp_path):
    import json as _json
    from dataclasses import asdict

    cfg = RewardConfig(embed_dim=2, n_categories=2, cost_fn=(1.0, 2.0), cost_fp=(1.0, 1.0))
    model = RewardModel(cfg)
    out = tmp_path / "a" / "b" / "rm"
    model.save(out)
    model.save(out)  # saving again over an existing folder is fine
    assert (out / "reward_config.json").read_text() == _json.dumps(asdict(cfg), indent=2)
    raw = _json.loads((out / "reward_config.json").read_text())
    del raw["cost_fn"], raw["cost_fp"]  # a config written before costs were stored
    (out / "reward_config.json").write_text(_json.dumps(raw))
    old = RewardModel.load(out)
    assert old.cfg.cost_fn == () and old.cfg.cost_fp == ()


def test_train_reward_logs_each_twentieth_epoch_and_is_reproducible():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 4)).astype(np.float32)
    idx = np.arange(30)
    chosen = rng.integers(0, 2, (30, 3)).astype(np.float32)
    rejected = 1 - chosen
    cfg = RewardConfig(embed_dim=4, n_categories=3, cost_fn=(1.0,) * 3, cost_fp=(1.0,) * 3, epochs=21, batch_size=8)
    logs = []
    a = train_reward(emb, idx, chosen, rejected, cfg, log=logs.append)
    assert [line.split(":")[0] for line in logs] == ["reward epoch 1/21", "reward epoch 21/21"]
    first_loss = float(logs[0].rsplit(" ", 1)[1])
    assert 0.5 < first_loss < 0.8  # the mean over all 30 pairs of -log sigmoid(margin), near log 2 at the start
    b = train_reward(emb, idx, chosen, rejected, cfg, log=lambda *x: None)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_rl_records_its_start_masks_held_out_gold_freezes_the_reward_and_follows_its_seed(taxonomy):
    from moderation.training.evaluate import utility_at

    names, target, policy, texts, reward, emb = toy_rl(taxonomy)
    gold = np.tile(target, (8, 1))
    mask = np.ones_like(gold)
    gold[:, 3], mask[:, 3] = 1, 0  # "sexual" is positive in gold but nobody judged it: it must not count
    thresholds = np.full(len(names), 0.5)
    start_p = torch.sigmoid(policy.text_logits(texts, max_windows=1)).detach().numpy()
    cfg = RLConfig(steps=4, batch_texts=4, group_size=4, lr=5e-3, eval_every=2, hack_patience=99, seed=7)

    def run(seed):
        p, logged = make_tiny_policy(taxonomy.names, seed=3), []
        rm = reward_preferring(target)
        h = train_rl(p, rm, texts, emb, taxonomy, texts, gold, mask, emb, thresholds, RLConfig(**{**cfg.__dict__, "seed": seed}),
                     log=logged.append)
        return h, logged, rm

    history, logged, rm = run(7)
    first = history.rows[0]
    assert set(first) == {"step", "heldout_utility", "heldout_rm_reward", "reward", "kl", "entropy"}
    assert (first["step"], first["reward"], first["kl"], first["entropy"]) == (0, None, 0.0, None)
    assert first["heldout_utility"] == pytest.approx(utility_at(start_p, gold, mask, thresholds, taxonomy))
    assert first["heldout_utility"] != pytest.approx(utility_at(start_p, gold, np.ones_like(mask), thresholds, taxonomy))
    assert [r["step"] for r in history.rows] == [0, 1, 2, 3, 4] and "heldout_utility" in history.rows[2]
    assert logged[0].startswith("RL start: held-out utility") and logged[-1].startswith("RL done in")
    assert not any(p.requires_grad for p in rm.parameters())  # the reward model is frozen during RL
    again, _, _ = run(7)
    assert again.rows == history.rows  # the same seed gives the same run
    other, _, _ = run(8)
    assert [r["reward"] for r in other.rows[1:]] != [r["reward"] for r in history.rows[1:]]


def test_rl_rows_evaluate_on_schedule_and_the_best_step_is_the_first_to_reach_the_best_utility(taxonomy, tmp_path):
    import json
    import re

    names, target, policy, texts, reward, emb = toy_rl(taxonomy)
    gold = np.tile(target, (8, 1))
    cfg = RLConfig(steps=5, batch_texts=4, group_size=4, lr=5e-3, eval_every=2, hack_patience=99, seed=1)
    logged = []
    history = train_rl(policy, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, np.full(len(names), 0.5),
                       cfg, out_dir=tmp_path / "rl", log=logged.append)
    step_keys = {"step", "reward", "kl", "entropy"}
    evaluated = step_keys | {"heldout_utility", "heldout_rm_reward"}
    # evaluated every `eval_every` steps and at the last step, not in between
    assert [set(r) for r in history.rows[1:]] == [step_keys, evaluated, step_keys, evaluated, evaluated]
    evals = [(r["step"], r["heldout_utility"]) for r in history.rows if "heldout_utility" in r]
    best = max(u for _, u in evals)
    assert history.best_step == next(s for s, u in evals if u == best)
    seconds = int(re.match(r"RL done in (\d+)s", logged[-1]).group(1))
    assert 0 <= seconds < 600
    saved = tmp_path / "rl"
    assert (saved / "policy_config.json").is_file() and (saved / "rl_curves.png").is_file()
    text = (saved / "rl_history.json").read_text()
    record = json.loads(text)
    assert record["config"] == json.loads(json.dumps(cfg.__dict__))
    assert record["rows"] == json.loads(json.dumps(history.rows)) and record["best_step"] == history.best_step
    assert record["stopped_for_reward_hacking"] is False and '\n  "config"' in text  # indented for people to read


def test_rl_truncates_reference_and_policy_alike_and_evaluates_the_first_window(taxonomy):
    """With `max_length` shorter than the texts, the policy and its KL reference must see the same truncated
    text (the KL of the first step is then exactly 0); held-out evaluation scores each text's first window."""
    from moderation.training.evaluate import utility_at

    names, target, policy, _, reward, _ = toy_rl(taxonomy)
    texts = [" ".join(f"word{j} number {i}" for j in range(30)) for i in range(8)]  # far past 6 tokens and one window
    emb = np.zeros((8, 4), dtype=np.float32)
    gold = np.tile(target, (8, 1))
    policy.eval()
    with torch.no_grad():
        first = torch.sigmoid(policy.text_logits(texts, max_windows=1)).numpy()
        every = torch.sigmoid(policy.text_logits(texts)).numpy()
    thresholds = (first[0] + every[0]) / 2  # decisions on text 0 depend on which windows are scored
    assert utility_at(first, gold, np.ones_like(gold), thresholds, taxonomy) != \
        pytest.approx(utility_at(every, gold, np.ones_like(gold), thresholds, taxonomy))
    cfg = RLConfig(steps=1, batch_texts=8, group_size=4, ppo_epochs=1, lr=5e-3, eval_every=1, hack_patience=99, max_length=6)
    history = train_rl(policy, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, thresholds, cfg,
                       log=lambda *a: None)
    assert history.rows[1]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert history.rows[0]["heldout_utility"] == pytest.approx(utility_at(first, gold, np.ones_like(gold), thresholds, taxonomy))


def test_rl_draws_distinct_texts_per_step_and_samples_at_its_temperature(taxonomy):
    names, target, policy, texts, reward, _ = toy_rl(taxonomy)
    policy.eval()
    emb = np.zeros((8, 4), dtype=np.float32)
    emb[:, 0] = np.arange(8)  # tags each text so the reward model's inputs show which texts a step drew
    seen = []
    forward = reward.forward
    reward.forward = lambda h, y: (seen.append(h[:, 0].tolist()), forward(h, y))[1]
    gold = np.tile(target, (8, 1))
    before = policy.predict_proba(texts)
    # A near-zero temperature samples only the greedy label set: every group agrees, so there is nothing to learn.
    cfg = RLConfig(steps=4, batch_texts=5, group_size=4, lr=5e-2, kl_beta=0.0, eval_every=99, hack_patience=99,
                   sample_temperature=1e-4)
    history = train_rl(policy, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, np.full(len(names), 0.5),
                       cfg, log=lambda *a: None)
    drawn = [s for s in seen if len(s) == 5]
    assert len(drawn) == 4 and all(len(set(s)) == 5 for s in drawn)  # without replacement
    assert max(r["kl"] for r in history.rows[1:]) == pytest.approx(0.0, abs=1e-9)  # it never moved
    assert np.allclose(policy.predict_proba(texts), before, atol=1e-6)
    # At temperature 1 the same run explores and moves the policy away from its reference.
    _, _, warm, _, reward, _ = toy_rl(taxonomy)
    moved = train_rl(warm, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, np.full(len(names), 0.5),
                     RLConfig(**{**cfg.__dict__, "sample_temperature": 1.0}), log=lambda *a: None)
    assert max(r["kl"] for r in moved.rows[1:]) > 1e-3


def test_rl_leash_holds_other_sources_texts_at_the_reference(taxonomy):
    """With `leash_texts`, RL also pays the KL to the reference on other sources' texts: the reward's pull
    toward toxic + violence moves them far less than without the leash."""
    other = [f"a sentence from somewhere else entirely, {w}" for w in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")]
    moved = {}
    for leash in (None, other):
        names, target, policy, texts, reward, emb = toy_rl(taxonomy)
        before = policy.predict_proba(other)
        cfg = RLConfig(steps=20, batch_texts=8, group_size=8, lr=5e-3, kl_beta=0.0, eval_every=99, hack_patience=99, leash=5.0)
        train_rl(policy, reward, texts, emb, taxonomy, texts, np.tile(target, (8, 1)), np.ones((8, len(names))), emb,
                 np.full(len(names), 0.5), cfg, log=lambda *a: None, leash_texts=leash)
        moved[leash is not None] = np.abs(policy.predict_proba(other) - before).mean()
    assert moved[False] > 0.02 and moved[True] < 0.5 * moved[False], moved


# The two longest RL runs come last: a mutation run stops at the first failing test (-x), so the quick
# tests above catch most mutants before these start.
def test_rl_converges_to_the_known_best_label_set_with_bounded_kl(taxonomy):
    names, target, policy, texts, reward, emb = toy_rl(taxonomy)
    gold = np.tile(target, (8, 1))
    before = (policy.predict_proba(texts) >= 0.5).astype(int)
    assert not (before == target).all()
    cfg = RLConfig(steps=80, batch_texts=8, group_size=8, lr=5e-3, kl_beta=0.02, eval_every=20, hack_patience=99)
    history = train_rl(policy, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, np.full(len(names), 0.5),
                       cfg, log=lambda *a: None)
    after = (policy.predict_proba(texts) >= 0.5).astype(int)
    assert (after == target).all(), after
    kls = [r["kl"] for r in history.rows if r.get("kl") is not None]
    assert max(kls) < 25.0  # the KL leash holds the policy near the reference
    assert history.rows[-1]["heldout_utility"] == 0.0
    evals = [(r["step"], r["heldout_utility"]) for r in history.rows if "heldout_utility" in r]
    assert history.best_step == next(s for s, u in evals if u == 0.0)  # the first to reach the best, not a later tie


def test_rl_stops_when_the_reward_model_and_the_reviewers_disagree(taxonomy):
    """The reward model wants `target`; held-out reviewers marked its complement. Chasing the reward raises its
    score while utility falls: the guard must stop training and put back the best-utility (starting) policy."""
    names, target, policy, texts, reward, emb = toy_rl(taxonomy)
    gold = np.tile(1 - target, (8, 1))  # what reviewers actually said
    before = policy.predict_proba(texts)
    cfg = RLConfig(steps=200, batch_texts=8, group_size=8, lr=5e-3, kl_beta=0.0, eval_every=10, hack_patience=1)
    history = train_rl(policy, reward, texts, emb, taxonomy, texts, gold, np.ones_like(gold), emb, np.full(len(names), 0.5),
                       cfg, log=lambda *a: None)
    assert history.stopped_for_reward_hacking and history.rows[-1]["step"] < 200
    assert history.best_step == 0
    assert np.allclose(policy.predict_proba(texts), before, atol=1e-5)  # the starting policy is back
