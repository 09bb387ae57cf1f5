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


def test_every_field_survives_a_reload_and_text_is_stored_as_written(tmp_path):
    rich = Judgment(key="k9", item_id="i9", text="café — naïve 😀", reviewer="r2", model_version="0.4.0", gold=(0, 1),
                    ranking=[(0, 1), (1, 1)], proposals=[(1, 1), (0, 1), (0, 0)], seconds=12.5, created_at="2026-11-29", note="n")
    skipped = Judgment(key="k10", item_id="i10", text="t", reviewer="r2", model_version="0.4.0", status="skipped")
    store = FeedbackStore(tmp_path, CATS)
    assert store.add([rich, skipped]) == 2
    raw = store.path.read_text(encoding="utf-8")
    assert "café — naïve 😀" in raw and raw.endswith("\n")  # not \u-escaped
    back = {j.key: j for j in FeedbackStore(tmp_path, CATS).judgments()}
    assert back["k9"] == rich and back["k10"] == skipped and back["k10"].gold is None


def test_an_empty_store_saves_its_header_only(tmp_path):
    store = FeedbackStore(tmp_path, CATS)
    store.save()
    assert store.path.read_text() == json.dumps({"_header": True, "categories": CATS}) + "\n"  # no blank line
    assert len(FeedbackStore(tmp_path, CATS)) == 0


def test_pairs_carry_their_judgment_and_corrections_beat_the_proposals():
    j = judgment(gold=(0, 1), ranking=[(1, 0), (0, 0)])
    j.proposals = [(1, 1), (0, 1)]  # what was proposed differs from what was ranked
    pairs = preference_pairs(j)
    assert all((p.key, p.item_id, p.text, p.reviewer) == (j.key, j.item_id, j.text, j.reviewer) for p in pairs)
    corrections = {(p.chosen, p.rejected) for p in pairs if p.origin == "correction"}
    assert corrections == {((0, 1), (1, 1))}  # against the proposals, not the ranking


def test_stats_and_corrections_count_exactly(tmp_path):
    store = FeedbackStore(tmp_path, CATS)
    store.add([judgment("a"), judgment("b", item_id="i2", gold=(0, 0), ranking=((0, 0), (1, 0))),
               judgment("c", item_id="i3", status="skipped")])
    assert [j.key for j in store.corrections()] == ["a", "b"]  # the skipped one has a gold set but is not done
    assert store.stats() == {"judgments": 3, "status_done": 2, "status_skipped": 1, "corrections": 2,
                             "preference_pairs": len(store.pairs()), "reviewers": 1}
    assert len(store.pairs()) == 3 + 1  # a: 3 pairs (see above); b: ranking (0,0) > (1,0), which its correction repeats
