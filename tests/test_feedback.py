"""moderation/feedback.py: preference pairs from rankings and corrections, and the store on disk."""

import json

import pytest

from moderation.feedback import FeedbackStore, Judgment, preference_pairs

CATS = ["toxic", "hate"]


def judgment(key="k1", gold=(1, 0), ranking=((1, 0), (0, 0), (1, 1)), status="done", **kw):
    return Judgment(key=key, item_id=kw.pop("item_id", "i1"), text="t", reviewer="r1", model_version="0.4.0", status=status,
                    gold=gold, ranking=[tuple(r) for r in ranking], proposals=[tuple(r) for r in ranking], **kw)


def test_ranking_and_correction_pairs_are_exactly_these():
    pairs = {(p.chosen, p.rejected, p.origin) for p in preference_pairs(judgment())}
    # K=3 ranked gives 3 pairs; the correction (1, 0) beats the two proposals that differ from it, and a pair
    # both sources give is counted once (as a correction)
    assert pairs == {((1, 0), (0, 0), "correction"), ((1, 0), (1, 1), "correction"), ((0, 0), (1, 1), "ranking")}
    corr = {(p.chosen, p.rejected) for p in preference_pairs(judgment(gold=(0, 1))) if p.origin == "correction"}
    assert corr == {((0, 1), (1, 0)), ((0, 1), (0, 0)), ((0, 1), (1, 1))}
    assert preference_pairs(judgment(status="skipped")) == []


def test_store_adds_new_keys_once_replaces_only_when_asked_and_survives_a_reload(tmp_path):
    store = FeedbackStore(tmp_path, CATS)
    assert store.add([judgment("a"), judgment("b", item_id="i2")]) == 2
    assert store.add([judgment("a")]) == 0  # pulling twice changes nothing
    edited = judgment("a", gold=(0, 0))
    assert store.add([edited]) == 0 and store.judgments()[0].gold == (1, 0)
    assert store.add([edited], replace=True) == 1
    again = FeedbackStore(tmp_path, CATS)
    assert len(again) == 2 and "a" in again and {j.key: j.gold for j in again.judgments()}["a"] == (0, 0)
    assert again.stats()["corrections"] == 2 and again.stats()["reviewers"] == 1


def test_store_refuses_label_sets_of_the_wrong_shape_and_a_store_of_other_categories(tmp_path):
    store = FeedbackStore(tmp_path, CATS)
    with pytest.raises(ValueError, match="does not fit the 2 categories"):
        store.add([judgment(gold=(1, 0, 1))])
    with pytest.raises(ValueError, match="does not fit"):
        store.add([judgment(gold=(2, 0))])
    assert len(store) == 0 and not store.path.exists()  # nothing half-written
    store.add([judgment()])
    with pytest.raises(ValueError, match="stored for categories"):
        FeedbackStore(tmp_path, ["toxic", "spam"])


def test_a_damaged_store_is_an_error_naming_the_line(tmp_path):
    store = FeedbackStore(tmp_path, CATS)
    store.add([judgment()])
    with open(store.path, "a") as f:
        f.write('{"key": "broken\n')
    with pytest.raises(ValueError, match="line 3: not valid JSON"):
        FeedbackStore(tmp_path, CATS)
    header = json.loads(store.path.read_text().splitlines()[0])
    assert header == {"_header": True, "categories": CATS}
