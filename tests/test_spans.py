"""Span offsets: every span points into the text the user passed, through normalisation, windows and
sentence segments, and on non-ASCII text."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.spans import Span, char_f1, merge_spans, spans_from_token_probs
from moderation.windows import SENTENCE_BOUNDARY, encode_windows, load_tokenizer, normalizer_for, sentences


@pytest.fixture(scope="module")
def tokenizer():
    from moderation.training.policy import base_model_dir

    return load_tokenizer(base_model_dir() / "tokenizer.json", 16, 4)  # short windows: long texts split often


# Pieces that exercise every normalisation step, plus plain and non-Latin words.
PIECES = ["idiot", "1d10t", "id\u200biot", "іdіоt", "𝐢𝐝𝐢𝐨𝐭", "ｉｄｉｏｔ", "i d i o t", "y o u i d i o t", "e\u0301cole",
          "naïve", "Привет", "東京", "😀", "you", "are", "an", "10am", "a b c", "stupid", "f*ck", "don't", ".", "!", "?",
          "\n", "  ", "\u00ad", "$h!t", "\ud800", "m-u-r-d-e-r", "k.i.l.l", "m o r o n", "U.S.A."]
texts = st.lists(st.sampled_from(PIECES), max_size=30).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_offsets_give_the_same_text_and_point_into_the_original(tokenizer, text):
    fold = normalizer_for(tokenizer)
    norm, starts, ends = fold.with_offsets(text)
    assert norm == fold(text)
    assert len(starts) == len(ends) == len(norm)
    assert np.all(starts >= 0) and np.all(ends <= len(text)) and np.all(starts <= ends)
    assert np.all(np.diff(starts) >= 0)  # order is kept: a span never runs backwards


@pytest.mark.parametrize("original", ["1d10t", "id\u200biot", "іdіоt", "𝐢𝐝𝐢𝐨𝐭", "ｉｄｉｏｔ", "i d i o t"])
def test_an_obfuscated_word_maps_back_to_all_of_its_characters(tokenizer, original):
    text = f"hey, {original} over there"
    norm, starts, ends = normalizer_for(tokenizer).with_offsets(text)
    a = norm.index("idiot")
    assert text[starts[a] : ends[a + 4]] == original


@settings(max_examples=200, deadline=None)
@given(texts)
def test_sentences_are_the_old_split(text):
    assert sentences(text) == [s for s in (p.strip() for p in SENTENCE_BOUNDARY.split(text)) if s]


@settings(max_examples=150, deadline=None)
@given(texts)
def test_window_tokens_point_at_their_own_characters(tokenizer, text):
    plain = encode_windows(tokenizer, [text, "short one. and another!"])
    tracked = encode_windows(tokenizer, [text, "short one. and another!"], offsets=True)
    assert [w.tolist() for w in plain.ids] == [w.tolist() for w in tracked.ids]  # offsets change nothing scored
    assert len(tracked.char_ranges) == len(tracked.ids)
    fold = normalizer_for(tokenizer)
    for ids, ranges, owner in zip(tracked.ids, tracked.char_ranges, tracked.owner):
        source = [text, "short one. and another!"][owner]
        for token_id, (a, b) in zip(ids, ranges):
            token = tokenizer.id_to_token(int(token_id))
            if token.startswith("[") and token.endswith("]"):
                continue
            piece = source[a:b]
            assert 0 <= a < b <= len(source)
            folded = fold(piece).lower()
            word = token.removeprefix("##")
            if word.isascii() and word.isalpha() and folded.isascii():
                assert word in re.sub(r"[^a-z]", "", folded) or folded.replace(" ", "") in word, (token, piece)


def test_spans_widen_to_words_and_join_across_spaces():
    text = "you stupid ignorant idiots, really"
    # tokens: "stupid", "ignorant", "idiot" + "##s"; only "idiot" and "stupid"/"ignorant" pass
    ranges = np.array([[0, 3], [4, 10], [11, 19], [20, 25], [25, 26], [28, 34]])
    probs = np.array([0.1, 0.9, 0.6, 0.8, 0.2, 0.1])
    assert spans_from_token_probs(text, ranges, probs, 0.5) == [(4, 26, 0.9)]
    assert text[4:26] == "stupid ignorant idiots"
    # a comma between two picked words keeps them apart
    probs = np.array([0.1, 0.1, 0.1, 0.8, 0.1, 0.7])
    assert [text[a:b] for a, b, _ in spans_from_token_probs(text, ranges, probs, 0.5)] == ["idiots", "really"]
    assert spans_from_token_probs(text, ranges, np.zeros(6), 0.5) == []


def test_overlapping_windows_give_one_span():
    spans = [Span(4, 10, "toxic", 0.7, "span_head"), Span(4, 10, "toxic", 0.9, "span_head"),
             Span(8, 14, "toxic", 0.6, "span_head"), Span(4, 10, "hate", 0.8, "span_head")]
    assert merge_spans(spans) == [Span(4, 10, "hate", 0.8, "span_head"), Span(4, 14, "toxic", 0.9, "span_head")]


def test_char_f1_is_semeval_task5s_per_post_score():
    assert char_f1(set(), set()) == 1.0
    assert char_f1({1}, set()) == 0.0 and char_f1(set(), {1}) == 0.0
    assert char_f1({1, 2}, {2, 3}) == pytest.approx(0.5)
    assert char_f1({1, 2, 3, 4}, {1, 2}) == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_html_entities_keep_span_offsets_in_the_shown_and_the_original_text():
    from labeling.queue import span_regions, unescape_with_offsets

    original = "&quot;you &amp; your idiot friends&quot; &#8220;ok&#8221;"
    shown, starts, ends = unescape_with_offsets(original)
    import html

    assert shown == html.unescape(original)
    a = original.index("idiot")
    [region] = span_regions([Span(a, a + 5, "toxic", 0.9, "span_head")], original)
    assert region["value"]["text"] == "idiot" and shown[region["value"]["start"] : region["value"]["end"]] == "idiot"
    assert region["value"]["labels"] == ["toxic"] and region["from_name"] == "evidence"


def test_reviewer_spans_land_in_the_judgment_in_original_offsets(taxonomy):
    from labeling.annotations import annotation_to_judgment

    original = "&quot;you idiot&quot; said the &lt;troll&gt;"
    shown = "\"you idiot\" said the <troll>"
    task = {"id": 7, "data": {"text": shown, "original_text": original, "item_id": "x:1", "model_version": "0.4.1",
                              "proposal_labels": [], "proposals": [], "model_spans": []}}
    ann = {"id": 11, "completed_by": 3, "result": [
        {"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": ["toxic"]}},
        {"from_name": "evidence", "to_name": "text", "type": "labels",
         "value": {"start": shown.index("idiot"), "end": shown.index("idiot") + 5, "text": "idiot", "labels": ["toxic"]}},
        {"from_name": "evidence", "to_name": "text", "type": "labels",
         "value": {"start": shown.index("<troll>"), "end": shown.index("<troll>") + 7, "text": "<troll>", "labels": ["toxic"]}},
    ]}
    j = annotation_to_judgment(task, ann, taxonomy)
    assert [original[a:b] for a, b, _ in j.spans] == ["idiot", "&lt;troll&gt;"]
    # a span with no category, or outside the text, is refused with the reason
    bad = {**ann, "result": [{"from_name": "evidence", "to_name": "text", "type": "labels",
                              "value": {"start": 0, "end": 3, "labels": ["rude"]}}]}
    with pytest.raises(ValueError, match="one category"):
        annotation_to_judgment(task, bad, taxonomy)
    bad["result"][0]["value"] = {"start": 5, "end": 500, "labels": ["toxic"]}
    with pytest.raises(ValueError, match="not inside"):
        annotation_to_judgment(task, bad, taxonomy)
    # a task shown without spans, reviewed without adding any, records None (nothing was said about spans)
    plain = {**task, "data": {k: v for k, v in task["data"].items() if k != "model_spans"}}
    assert annotation_to_judgment(plain, {**ann, "result": ann["result"][:1]}, taxonomy).spans is None
    assert annotation_to_judgment(task, {**ann, "result": ann["result"][:1]}, taxonomy).spans == []


def test_spans_round_trip_through_the_feedback_store(tmp_path, taxonomy):
    from moderation.feedback import FeedbackStore, Judgment

    j = Judgment(key="k1", item_id="i", text="you idiot", reviewer="r", model_version="v", gold=(1, 0, 0, 0, 0, 0, 0),
                 spans=[(4, 9, "toxic")])
    FeedbackStore(tmp_path, taxonomy.names).add([j, Judgment(key="k2", item_id="j", text="t", reviewer="r", model_version="v")])
    back = {x.key: x for x in FeedbackStore(tmp_path, taxonomy.names).judgments()}
    assert back["k1"].spans == [(4, 9, "toxic")] and back["k2"].spans is None


@pytest.fixture(scope="module")
def span_package(tmp_path_factory, taxonomy, small_examples):
    """A tiny policy with a (random) span head, exported through the real pipeline."""
    from dataclasses import replace

    from moderation.training.export import ExportConfig, export_package
    from moderation.training.policy import SpanHead
    from tests.conftest import make_tiny_policy

    policy = make_tiny_policy(taxonomy.names)
    policy.config = replace(policy.config, span_categories=["toxic", "hate", "violence"], span_hidden=8, span_threshold=0.5)
    policy.span_head = SpanHead(policy.encoder.config.hidden_size, 8, 3)
    ckpt = policy.save(tmp_path_factory.mktemp("span_ckpt"))
    out = tmp_path_factory.mktemp("span_pkg") / "pkg"
    export_package(ckpt, out, taxonomy, small_examples["validation"][:150], small_examples["test"][:100],
                   ExportConfig(parity_examples=100, max_auprc_drop=1.0), log=lambda *a: None)
    return out


def _everything_flagged(mod):
    mod.review_thresholds = np.zeros_like(mod.review_thresholds)
    mod.span_threshold = 0.0
    return mod


def test_moderate_gives_spans_only_when_asked_and_every_flag_has_evidence(span_package):
    from moderation.runtime import Moderator

    mod = Moderator.load(span_package)
    assert mod.span_categories == ["toxic", "hate", "violence"]
    text = "hey 1d10t, ｉｄｉｏｔ and i d i o t! Привет 😀 second sentence here."
    plain = mod.moderate(text)
    assert plain.spans is None and "spans" not in plain.to_dict()
    nothing = Moderator.load(span_package)
    nothing.review_thresholds = np.full_like(nothing.review_thresholds, 1.01)
    assert nothing.moderate(text, spans=True).spans == []  # nothing flagged: no spans
    result = _everything_flagged(mod).moderate([text, "short"], spans=True)[0]
    assert result.to_dict()["spans"] and all(set(s) == {"start", "end", "category", "score", "source"} for s in result.to_dict()["spans"])
    by_category = {}
    for s in result.spans:
        assert 0 <= s.start < s.end <= len(text)
        by_category.setdefault(s.category, set()).add(s.source)
    assert set(by_category) == set(mod.categories)  # every flagged category shows its evidence
    assert all(by_category[c] == {"span_head"} for c in ("toxic", "hate", "violence"))
    assert all(by_category[c] == {"category_tokens"} for c in ("sexual", "self_harm", "misleading", "spam"))
    covered = set()
    for s in result.spans:
        covered.update(range(s.start, s.end))
    for word in ("1d10t", "ｉｄｉｏｔ", "i d i o t", "Привет", "sentence"):  # obfuscated and non-ASCII words, whole
        a = text.index(word)
        assert set(range(a, a + len(word))) <= covered, word


def test_all_mode_adds_the_heads_marks_where_nothing_is_flagged_and_refuses_unknown_modes(span_package):
    from moderation.runtime import InputError, Moderator

    text = "hey 1d10t, you are awful. Second sentence here!"
    mod = Moderator.load(span_package)
    assert "threshold_all" not in mod.manifest["spans"]  # exported without trial posts: nothing tuned, so
    assert mod.span_threshold_all == mod.span_threshold  # "all" falls back to the flagged threshold
    mod.review_thresholds = np.full_like(mod.review_thresholds, 1.01)  # nothing flagged
    mod.span_threshold_all = 0.0  # the head marks every token
    assert mod.moderate(text, spans=True).spans == [] and mod.moderate(text, spans="flagged").spans == []
    result = mod.moderate(text, spans="all")
    assert not result.flagged and result.spans
    assert {s.category for s in result.spans} == {"toxic", "hate", "violence"}  # the head's categories only
    assert all(s.source == "span_head" and 0 <= s.start < s.end <= len(text) for s in result.spans)
    mod.span_threshold_all = 1.01  # the head marks nothing: nothing, since nothing is flagged either
    assert mod.moderate(text, spans="all").spans == []
    # flagged categories outside the head keep their evidence in "all" mode too
    flagged = _everything_flagged(Moderator.load(span_package))
    flagged.span_threshold_all = 1.01
    kinds = {(s.category, s.source) for s in flagged.moderate(text, spans="all").spans}
    assert ("spam", "category_tokens") in kinds and ("toxic", "category_tokens") in kinds
    for bad in ("everything", 1, "ALL"):
        with pytest.raises(InputError, match="spans must be"):
            mod.moderate(text, spans=bad)


def test_windows_say_where_the_sentence_segments_start(tokenizer):  # what spans="all" skips
    windows = encode_windows(tokenizer, ["one. two. three.", "a b c d e f g h i j k l m n o p q r s t u v w x y z"])
    # text 0 is one window and three sentences; text 1 is one sentence over several windows
    assert windows.n_text_windows == len(windows.ids) - 3 and list(windows.owner[windows.n_text_windows :]) == [0, 0, 0]
    assert list(windows.owner[: windows.n_text_windows]).count(1) > 1


def test_span_thresholds_are_tuned_into_an_exported_package(span_package, tmp_path):
    import json
    import shutil

    from moderation.runtime import Moderator
    from moderation.training.spans import tune_package_span_thresholds

    package = tmp_path / "pkg"
    shutil.copytree(span_package, package)
    posts = [("you are an idiot", [8, 9, 10, 11, 12, 13, 14, 15]), ("have a lovely day", [])] * 3
    table = tune_package_span_thresholds(package, posts, log=lambda *a: None)
    assert {"threshold", "threshold_all", "trial_f1", "trial_f1_all", "tuned_on"} <= set(table)
    mod = Moderator.load(package)  # the rewritten manifest still verifies every file
    assert (mod.span_threshold, mod.span_threshold_all) == (table["threshold"], table["threshold_all"])
    assert json.loads((package / "manifest.json").read_text())["version"] == Moderator.load(span_package).version


def test_spans_survive_long_texts_split_into_windows(span_package):
    from moderation.runtime import Moderator

    mod = _everything_flagged(Moderator.load(span_package))
    filler = " ".join(f"word{i}" for i in range(400))
    text = f"{filler} you 1d10t. {filler}"
    [result] = mod.moderate([text], spans=True)
    toxic = [s for s in result.spans if s.category == "toxic"]
    assert toxic and all(0 <= s.start < s.end <= len(text) for s in toxic)
    a = text.index("1d10t")
    assert any(s.start <= a and a + 5 <= s.end for s in toxic)
    assert result.scores == Moderator.load(span_package).moderate(text).scores  # spans change no score


def test_a_package_without_token_outputs_refuses_spans_clearly(tiny_package, tmp_path):
    import onnx

    from moderation.package import ModelPackageError, write_manifest
    from moderation.runtime import Moderator
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_package, old)
    graph = onnx.load(str(old / "model.onnx"))
    keep = [o for o in graph.graph.output if o.name == "probs"]
    del graph.graph.output[:]
    graph.graph.output.extend(keep)
    onnx.save(graph, str(old / "model.onnx"))
    manifest = json.loads((old / "manifest.json").read_text())
    write_manifest(old, {k: v for k, v in manifest.items() if k not in ("files",)})
    mod = Moderator.load(old)
    assert mod.moderate("fine").spans is None  # scoring still works
    with pytest.raises(ModelPackageError, match="no per-token output"):
        mod.moderate("fine", spans=True)
