"""Feedback says only what reviewers said: a simulated reviewer judges only what its source's annotator
judged (nothing comes from the model), and a category nobody judged reaches no pair, no loss and no utility."""

import numpy as np
import pytest
import torch

from labeling.annotations import agreement, annotation_to_judgment
from labeling.simulate import RANK_RULES, offline_judgments, rank_proposals, review, reviewer_labels
from moderation.feedback import FeedbackStore, Judgment, preference_pairs
from moderation.training.data import Example

NAMES = ["toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam"]


def example(annotators, labels=None):
    """An item whose source labelled toxic, hate and violence, judged by these annotators."""
    return Example("ex:1", "some text", "toxic_spans", labels or {"toxic": 1.0, "hate": 1.0, "violence": 1.0},
                   annotators=[(f"a{i}", a) for i, a in enumerate(annotators)])


def test_a_simulated_reviewer_judges_only_what_its_annotator_judged_and_nothing_from_the_model(taxonomy):
    ex = example([{"toxic": 1, "hate": 0}])  # the item's consensus says violence too; this annotator did not judge it
    labels, judged = reviewer_labels(ex, taxonomy.names, reviewer=1, noise=0.0, seed=0)
    assert labels == (1, 0, 0, 0, 0, 0, 0) and judged == (1, 1, 0, 0, 0, 0, 0)
    # The model's proposals change the ranking only, never the labels: all-positive and all-negative proposals
    # give the same judgment.
    everything, nothing = [(1,) * 7, (0,) * 7], [(0,) * 7, (1,) * 7]
    assert review(ex, everything, taxonomy, 1, 0.0, 0)[:2] == review(ex, nothing, taxonomy, 1, 0.0, 0)[:2] == (labels, judged)


def test_slips_flip_judged_categories_only(taxonomy):
    ex = example([{"toxic": 0, "hate": 0}])
    for seed in range(30):
        labels, judged = reviewer_labels(ex, taxonomy.names, reviewer=1, noise=0.5, seed=seed)
        assert judged == (1, 1, 0, 0, 0, 0, 0) and labels[2:] == (0,) * 5
    flipped = [reviewer_labels(ex, taxonomy.names, 1, 0.5, s)[0][:2] for s in range(30)]
    assert len(set(flipped)) > 1  # the judged ones do slip


def test_an_item_without_annotators_is_judged_on_nothing(taxonomy):
    labels, judged = reviewer_labels(example([]), taxonomy.names, 1, 0.0, 0)
    assert judged == (0,) * 7 and labels == (0,) * 7


def test_ranking_rules_follow_the_reviewers_labels_on_judged_categories_only():
    labels, judged = (1, 1, 0), (1, 1, 0)
    miss_hate, false_alarm, exact, exact_but_third = (1, 0, 0), (1, 1, 1), (1, 1, 0), (1, 1, 1)
    rng = np.random.default_rng(0)
    # agreement: the exact set first; a missed harm and a false alarm on a judged category tie
    order = rank_proposals([miss_hate, exact, (0, 0, 0)], labels, judged, "agreement", 0.0, rng)
    assert order == [1, 0, 2]
    # misses first: a false alarm beats a miss, whatever their count of disagreements
    assert rank_proposals([(1, 0, 0), (1, 1, 1)], (1, 1, 1), (1, 1, 1), "misses_first", 0.0, rng) == [1, 0]
    assert rank_proposals([(1, 1, 1), (0, 1, 0)], (1, 1, 1), (1, 1, 1), "misses_first", 0.0, rng) == [0, 1]
    # the third category is not judged: a proposal differing only there is a tie, ordered at random
    firsts = {rank_proposals([exact, exact_but_third, false_alarm], labels, judged, "agreement", 0.0,
                             np.random.default_rng(s))[0] for s in range(40)}
    assert firsts == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown ranking rule 'loudest'"):
        rank_proposals([exact], labels, judged, "loudest", 0.0, rng)
    assert set(RANK_RULES) == {"agreement", "misses_first"}


def test_no_pair_from_label_sets_that_differ_only_in_unjudged_categories():
    j = Judgment("k", "i", "t", "r", "v", gold=(1, 0, 0), judged=(1, 1, 0),
                 ranking=[(1, 0, 0), (1, 0, 1), (0, 0, 0)], proposals=[(1, 0, 1), (0, 0, 0), (1, 0, 0)])
    pairs = {(p.chosen, p.rejected, p.origin) for p in preference_pairs(j)}
    # (1,0,0) vs (1,0,1) differ only in the unjudged third category: no pair either way (the correction
    # and the ranking agree on gold over (0,0,0): one pair)
    assert pairs == {((1, 0, 1), (0, 0, 0), "ranking"), ((1, 0, 0), (0, 0, 0), "correction")}
    assert all(p.judged == (1, 1, 0) for p in preference_pairs(j))
    # with every category judged, the same judgment gives the third-category pairs too
    full = Judgment("k", "i", "t", "r", "v", gold=(1, 0, 0), ranking=j.ranking, proposals=j.proposals)
    assert ((1, 0, 0), (1, 0, 1), "correction") in {(p.chosen, p.rejected, p.origin) for p in preference_pairs(full)}


def test_the_store_keeps_the_judged_mask_and_refuses_a_wrong_one(tmp_path):
    store = FeedbackStore(tmp_path, ["a", "b"])
    store.add([Judgment("k1", "i", "t", "r", "v", gold=(1, 0), judged=(1, 0))])
    assert FeedbackStore(tmp_path, ["a", "b"]).judgments()[0].judged == (1, 0)
    with pytest.raises(ValueError, match=r"judgment k2: judged mask \(1, 0, 1\) does not fit the 2 categories"):
        store.add([Judgment("k2", "i", "t", "r", "v", gold=(1, 0), judged=(1, 0, 1))])
    with pytest.raises(ValueError, match="judged mask"):
        store.add([Judgment("k3", "i", "t", "r", "v", gold=(1, 0), judged=(1, 2))])


def test_a_reviewer_can_mark_categories_they_cannot_judge(taxonomy):
    task = {"id": 1, "data": {"item_id": "x", "text": "t", "proposal_labels": [[0] * 7], "proposals": [{"id": "card-1"}]}}

    def ann(*results):
        return {"id": 9, "completed_by": 1, "result": list(results)}

    ticked = {"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": ["toxic"]}}
    unsure = {"from_name": "cannot_judge", "to_name": "text", "type": "choices", "value": {"choices": ["misleading", "spam"]}}
    j = annotation_to_judgment(task, ann(ticked, unsure), taxonomy)
    assert j.gold == (1, 0, 0, 0, 0, 0, 0) and j.judged == (1, 1, 1, 1, 1, 0, 0)
    assert annotation_to_judgment(task, ann(ticked), taxonomy).judged is None  # judged everything
    both = dict(unsure, value={"choices": ["toxic"]})
    with pytest.raises(ValueError, match="toxic both ticked and marked as not judged"):
        annotation_to_judgment(task, ann(ticked, both), taxonomy)
    with pytest.raises(ValueError, match="unknown category 'scams' marked as not judged"):
        annotation_to_judgment(task, ann(dict(unsure, value={"choices": ["scams"]})), taxonomy)


def test_agreement_counts_only_reviewers_who_judged_the_category():
    js = [Judgment(f"k{i}", "item", "t", f"r{i}", "v", gold=g, judged=m)
          for i, (g, m) in enumerate([((1, 0), (1, 1)), ((1, 1), (1, 1)), ((1, 0), (1, 0))])]
    js += [Judgment(f"m{i}", "other", "t", f"r{i}", "v", gold=g) for i, g in enumerate([(0, 1), (0, 0)])]
    alpha = agreement(js, ["a", "b"])
    # b: the third reviewer did not judge it, so 'item' has two values for b (0 and 1), not three
    from labeling.annotations import krippendorff_alpha_nominal

    assert alpha["b"] == pytest.approx(krippendorff_alpha_nominal([[0, 1], [1, 0]]))
    assert alpha["a"] == pytest.approx(krippendorff_alpha_nominal([[1, 1, 1], [0, 0]]))


def test_consensus_is_a_majority_of_those_who_judged():
    from moderation.training.improve import consensus

    js = [Judgment("1", "item", "t", "r1", "v", gold=(1, 0, 0), judged=(1, 1, 0)),
          Judgment("2", "item", "t", "r2", "v", gold=(0, 1, 0), judged=(0, 1, 0)),
          Judgment("3", "item", "t", "r3", "v", gold=(0, 0, 0), judged=(0, 1, 0)),
          Judgment("4", "solo", "u", "r1", "v", gold=(0, 0, 1))]
    texts, gold, judged = consensus(js, 3)
    assert texts == ["t", "u"]
    np.testing.assert_array_equal(gold, [[1, 0, 0], [0, 0, 1]])  # hate: 1 of 3 judges; violence: nobody judged 'item'
    np.testing.assert_array_equal(judged, [[1, 1, 0], [1, 1, 1]])


def test_an_unjudged_category_gets_no_gradient_in_the_reward_model():
    from moderation.training.reward import RewardConfig, pairs_to_arrays, train_reward

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    pairs = []
    from moderation.feedback import PreferencePair

    for i in range(40):  # toxic decides every pair; hate differs too, but nobody judged it
        pairs.append(PreferencePair("k", str(i), f"t{i}", (1, 1), (0, 0), "r", "ranking", judged=(1, 0)))
    idx, chosen, rejected = pairs_to_arrays(pairs, {f"t{i}": i for i in range(40)})
    np.testing.assert_array_equal(chosen[:, 1], 0) and np.testing.assert_array_equal(rejected[:, 1], 0)
    model = train_reward(emb, idx, chosen, rejected, RewardConfig(embed_dim=8, n_categories=2, epochs=5), log=lambda m: None)
    torch.manual_seed(0)
    start = type(model)(model.cfg).belief  # the same initialisation train_reward used (seed 0)
    assert torch.equal(model.belief.weight[1], start.weight[1]) and torch.equal(model.belief.bias[1], start.bias[1])
    assert not torch.equal(model.belief.weight[0], start.weight[0])


def test_unjudged_gold_changes_neither_sft_on_corrections_nor_its_selection(taxonomy):
    from moderation.training.improve import ImproveConfig, heldout_score, heldout_utility, sft_on_corrections
    from tests.conftest import make_tiny_policy

    texts = [f"text number {i}" for i in range(12)]
    judged = np.zeros((12, len(taxonomy)), np.float32)
    judged[:, 0] = 1  # only toxic was judged
    gold = np.zeros_like(judged)
    gold[::2, 0] = 1
    other = gold.copy()
    other[:, 1:] = 1  # every unjudged category "positive": must not matter
    cfg = ImproveConfig(sft_epochs=2, sft_batch=4)
    runs = []
    for g in (gold, other):
        policy = make_tiny_policy(taxonomy.names, finetune="lora")
        report = sft_on_corrections(policy, texts, g, judged, texts[:6], g[:6], judged[:6], taxonomy, cfg, log=lambda m: None)
        runs.append((report["history"], {k: v.clone() for k, v in policy.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    policy = make_tiny_policy(taxonomy.names)
    assert heldout_utility(policy, texts, gold, judged, taxonomy) == heldout_utility(policy, texts, other, judged, taxonomy)
    assert heldout_score(policy, texts, gold, judged, taxonomy, "log_loss") == heldout_score(policy, texts, other, judged, taxonomy, "log_loss")
    assert heldout_score(policy, texts, gold, np.ones_like(judged), taxonomy, "log_loss") != heldout_score(
        policy, texts, other, np.ones_like(judged), taxonomy, "log_loss")
    assert heldout_utility(policy, texts, gold, np.ones_like(judged), taxonomy) != heldout_utility(policy, texts, other,
                                                                                                   np.ones_like(judged), taxonomy)


def test_offline_judgments_record_the_mask_and_hold_no_positive_outside_it(examples, taxonomy):
    items = [e for e in examples if e.annotators][:200]
    props = [[(1,) * len(taxonomy), (0,) * len(taxonomy)] for _ in items]  # a model that proposes everything
    js = offline_judgments(items, props, taxonomy, noise=0.05, seed=0)
    assert any(j.judged is not None for j in js)
    for j in js:
        mask = j.judged_mask(len(taxonomy))
        assert all(g == 0 for g, m in zip(j.gold, mask) if not m)
    # spam, misleading and self_harm are judged by none of these sources: nobody may call them positive
    for c in ("spam", "misleading", "self_harm"):
        assert sum(j.gold[taxonomy.names.index(c)] for j in js) == 0


# ------------------------------------------------------------------ clean splits


def test_the_gate_split_is_carved_from_validation_and_disjoint(examples):
    from collections import Counter

    from moderation.training.data import GATE_SHARE_OF_VALIDATION, held_back_ids

    share = Counter(e.split for e in examples)
    assert set(share) == {"train", "validation", "gate", "test"}
    band = share["validation"] + share["gate"]
    assert abs(share["gate"] / band - GATE_SHARE_OF_VALIDATION) < 0.03
    assert 0.08 < band / len(examples) < 0.12 and 0.08 < share["test"] / len(examples) < 0.12
    groups = {}
    for e in examples:
        groups.setdefault(e.group, set()).add(e.split)
    assert all(len(s) == 1 for s in groups.values())  # a group (duplicates, perturbation pairs) never straddles
    held = held_back_ids(examples)
    assert held == {e.id for e in examples if e.split in ("test", "gate")}


def test_judgments_of_test_or_gate_items_never_reach_training(taxonomy):
    from moderation.training.improve import feedback_data, usable_judgments

    n = len(taxonomy)
    js = [Judgment(f"k{i}", f"item{i}", f"text {i}", "r", "v", gold=(i % 2,) + (0,) * (n - 1),
                   ranking=[(1,) + (0,) * (n - 1), (0,) * n]) for i in range(40)]
    held_back = {"item3", "item7", "item20"}
    assert [j.item_id for j in usable_judgments(js, held_back)] == [f"item{i}" for i in range(40) if f"item{i}" not in held_back]
    fb = feedback_data(js, n, 0.2, 0, [], 0, held_back)
    seen = {j.item_id for j in fb.train_js + fb.held_js}
    assert not seen & held_back and len(seen) == 37
    assert not {"text 3", "text 7", "text 20"} & set(fb.train_texts + fb.held_texts + fb.rl_pool)


def test_an_adjudicated_annotator_says_only_what_the_sources_annotators_judged():
    """Sources that publish one label per item (OLID, YouTube spam) replay that label, for the categories the
    source judged: never the negatives our loader assumes on domain grounds, never a missing label."""
    from labeling.simulate import with_adjudicated_annotator

    olid = Example("olid_v1:1", "@USER you are a clown", "olid_v1",
                   {"toxic": 0.5, "hate": 0.0, "violence": 0.0, "sexual": 0.0, "spam": 0.0, "self_harm": None, "misleading": None})
    assert with_adjudicated_annotator(olid).annotators == [("adjudicated", {"toxic": 1})]  # UNT (0.5) is offensive
    spam = Example("yt:1", "check out my channel", "youtube_spam_collection", {"spam": 1.0, "misleading": 0.0})
    assert with_adjudicated_annotator(spam).annotators == [("adjudicated", {"spam": 1})]
    unlabelled = Example("olid_v1:2", "x", "olid_v1", {"toxic": None, "spam": 0.0})
    assert with_adjudicated_annotator(unlabelled).annotators == []  # nothing judged: nothing to replay
    multi = Example("d:1", "x", "davidson_hate_offensive", {"toxic": 1.0}, annotators=[("a", {"toxic": 0})])
    assert with_adjudicated_annotator(multi) is multi  # real per-annotator labels are kept as they are


def test_replay_mixes_training_examples_into_every_correction_batch(taxonomy, monkeypatch):
    """SFT with replay sees `ratio` replayed items per reviewed item in each batch, with their own mask."""
    from moderation.training.improve import ImproveConfig, Replay, sft_on_corrections
    from tests.conftest import make_tiny_policy

    texts = [f"reviewed {i}" for i in range(8)]
    judged = np.zeros((8, len(taxonomy)), np.float32)
    judged[:, 0] = 1
    gold = judged.copy()
    replay = Replay([f"replayed {i}" for i in range(30)], np.ones((30, len(taxonomy)), np.float32),
                    np.ones((30, len(taxonomy)), np.float32), ratio=1.0)
    seen = []
    policy = make_tiny_policy(taxonomy.names, finetune="lora")
    original = policy.train_logits
    policy.train_logits = lambda batch, **kw: (seen.append(list(batch)), original(batch, **kw))[1]
    sft_on_corrections(policy, texts, gold, judged, texts[:2], gold[:2], judged[:2], taxonomy,
                       ImproveConfig(sft_epochs=1, sft_batch=4, sft_select="utility"), log=lambda m: None, replay=replay)
    assert len(seen) == 2 and all(len(b) == 8 for b in seen)
    assert all(sum(t.startswith("replayed") for t in b) == 4 for b in seen)
    # and the replayed labels reach the loss: without replay, categories nobody judged get no gradient
    # (every epoch counts as an improvement here, so the trained weights are kept, not the start)
    import itertools

    from moderation.training import improve

    calls = itertools.count()
    monkeypatch.setattr(improve, "heldout_utility", lambda *a, **k: float(next(calls)))
    runs = []
    for r in (None, replay):
        p = make_tiny_policy(taxonomy.names, finetune="lora")
        sft_on_corrections(p, texts, gold, judged, texts[:2], gold[:2], judged[:2], taxonomy,
                           ImproveConfig(sft_epochs=1, sft_batch=4, sft_select="utility"), log=lambda m: None, replay=r)
        with torch.no_grad():
            runs.append(torch.sigmoid(p.eval().text_logits(["replayed 3"]))[0])
    assert not torch.allclose(runs[0][1:], runs[1][1:])


def test_recalibration_after_fine_tuning_keeps_the_ranking_and_ignores_unjudged_categories(taxonomy):
    from moderation.training.improve import recalibrate
    from tests.conftest import make_tiny_policy

    validation = [Example(f"v:{i}", f"validation text {i}", "s", {"toxic": float(i % 4 == 0), "spam": 0.0}) for i in range(40)]
    texts = [f"reviewed {i}" for i in range(10)]
    judged = np.zeros((10, len(taxonomy)), np.float32)
    judged[:, 0] = 1
    gold = judged.copy()  # every reviewed item toxic
    probe = [f"probe {i}" for i in range(30)]
    fitted = []
    for unjudged_value in (0.0, 1.0):
        g = gold.copy()
        g[:, 1:] = unjudged_value  # what a reviewer did not judge must not matter
        policy = make_tiny_policy(taxonomy.names)
        before = policy.predict_proba(probe)
        recalibrate(policy, validation, texts, g, judged)
        after = policy.predict_proba(probe)
        fitted.append((policy.log_temperature.clone(), policy.calibration_bias.clone()))
        for c in (0, len(taxonomy) - 1):  # toxic and spam were fitted
            assert (np.argsort(before[:, c], kind="stable") == np.argsort(after[:, c], kind="stable")).all()
    assert torch.equal(fitted[0][0], fitted[1][0]) and torch.equal(fitted[0][1], fitted[1][1])
    spam = taxonomy.names.index("spam")
    assert fitted[0][1][spam] == 0.0 and fitted[0][0][spam] == 0.0  # no spam positive: too few to fit, identity kept
    assert fitted[0][1][0] != 0.0  # toxic: 10 validation and 10 reviewed positives, fitted


def test_the_leash_trains_replayed_texts_toward_the_starting_policy_not_their_labels(taxonomy, monkeypatch):
    """Replay(leash=True): the replayed rows' targets are the starting policy's probabilities on every
    category (a per-category KL to the start), whatever their labels say; the corrections keep their mask and
    are averaged apart from the leash."""
    import torch.nn.functional as F

    from moderation.training import improve
    from moderation.training.improve import ImproveConfig, Replay, sft_on_corrections
    from tests.conftest import make_tiny_policy

    texts = [f"reviewed post number {i}" for i in range(8)]
    judged = np.zeros((8, len(taxonomy)), np.float32)
    judged[:, 0] = 1
    gold = judged.copy()
    others = [f"another platform's text {i}" for i in range(20)]
    ones = np.ones((20, len(taxonomy)), np.float32)  # labels the leash must ignore
    policy = make_tiny_policy(taxonomy.names, finetune="lora")
    with torch.no_grad():
        start = {t: torch.sigmoid(policy.eval().train_logits([t]))[0] for t in others}
    from moderation.training.policy import PolicyModel

    seen, real_bce = [], F.binary_cross_entropy_with_logits
    original, batches = PolicyModel.train_logits, []
    # on the class: the leash's frozen copy of the start must call the real thing (and is not recorded)
    monkeypatch.setattr(PolicyModel, "train_logits",
                        lambda self, batch, **kw: ((batches.append(list(batch)) if self is policy else None), original(self, batch, **kw))[1])
    monkeypatch.setattr(improve.F, "binary_cross_entropy_with_logits",
                        lambda logits, target, **kw: (seen.append(target.detach().clone()), real_bce(logits, target, **kw))[1])
    sft_on_corrections(policy, texts, gold, judged, texts[:2], gold[:2], judged[:2], taxonomy,
                       ImproveConfig(sft_epochs=1, sft_batch=4, sft_select="utility"), log=lambda m: None,
                       replay=Replay(others, ones, ones, leash=True))
    assert len(seen) == 2
    for batch, target in zip(batches, seen):
        assert torch.equal(target[:4], torch.from_numpy(gold[:4]))  # the corrections: their own labels
        for text, row in zip(batch[4:], target[4:]):  # the leash: where the start scored them, every category
            assert torch.allclose(row, start[text], atol=1e-3) and not torch.allclose(row, torch.ones_like(row))


def test_sft_can_pick_its_epoch_by_held_out_log_loss(taxonomy):
    from moderation.errors import ConfigError
    from moderation.training.improve import ImproveConfig, sft_on_corrections
    from tests.conftest import make_tiny_policy

    with pytest.raises(ConfigError, match="sft_select must be one of"):
        ImproveConfig(sft_select="accuracy")
    texts = [f"reviewed {i}" for i in range(12)]
    judged = np.zeros((12, len(taxonomy)), np.float32)
    judged[:, 0] = 1
    gold = judged.copy()
    gold[::2, 0] = 0
    policy = make_tiny_policy(taxonomy.names, finetune="lora")
    report = sft_on_corrections(policy, texts, gold, judged, texts[:6], gold[:6], judged[:6], taxonomy,
                                ImproveConfig(sft_epochs=3, sft_batch=4, sft_lr=3e-3, sft_select="log_loss"), log=lambda m: None)
    losses = [h["heldout_log_loss"] for h in report["history"]]
    assert report["selected_on"] == "log_loss" and report["best_epoch"] == int(np.argmin(losses))
    assert report["best_heldout_utility"] == report["history"][report["best_epoch"]]["heldout_utility"]
