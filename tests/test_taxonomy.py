import numpy as np
import pytest

from moderation.taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy

GOOD = {"name": "t", "version": "1", "category": [
    {"name": "toxic", "definition": "rude", "cost_fn": 1.0, "cost_fp": 1.0, "review_recall": 0.9, "block_precision": 0.9},
    {"name": "spam", "definition": "ads", "cost_fn": 2.0, "cost_fp": 0.5, "review_recall": 0.8, "block_precision": 0.95},
]}


def test_default_taxonomy_has_the_seven_categories():
    t = load_taxonomy()
    assert t.names == ["toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam"]
    assert all(c.definition for c in t.categories)
    assert t.cost_fn[t.index("self_harm")] > t.cost_fp[t.index("self_harm")]  # a missed crisis costs more


def test_round_trip_through_toml(tmp_path):
    t = load_taxonomy()
    p = tmp_path / "t.toml"
    p.write_text(t.to_toml())
    assert load_taxonomy(p) == t


def test_utility_counts_costs():
    t = parse_taxonomy(GOOD)
    gold = np.array([[1, 0], [0, 1]])
    assert t.utility(gold, gold).tolist() == [0.0, 0.0]
    # missed toxic (cost_fn 1) + false spam (cost_fp 0.5)
    assert t.utility(np.array([[0, 1]]), np.array([[1, 0]])).tolist() == [-1.5]
    # a masked category costs nothing
    assert t.utility(np.array([[0, 1]]), np.array([[1, 0]]), mask=np.array([[0, 1]])).tolist() == [-0.5]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["category"][1].pop("cost_fn"), "category[1] (spam).cost_fn is missing"),
    (lambda d: d["category"][0].update(cost_fp=-1), "category[0] (toxic).cost_fp must be > 0.0"),
    (lambda d: d["category"][0].update(review_recall=1.5), "category[0] (toxic).review_recall must be > 0.0 and <= 1.0"),
    (lambda d: d["category"][1].update(name="toxic"), "category[1] (toxic).name is a duplicate"),
    (lambda d: d["category"][0].update(name="bad name"), "category[0].name must be an identifier"),
    (lambda d: d["category"][0].update(definition=""), "category[0] (toxic).definition must be a non-empty string"),
    (lambda d: d["category"][0].update(colour="red"), "category[0] (toxic) has unknown field(s): colour"),
    (lambda d: d["category"][0].update(cost_fn="high"), "category[0] (toxic).cost_fn must be a number"),
    (lambda d: d.pop("category"), "needs at least one [[category]]"),
])
def test_invalid_taxonomy_names_the_field(mutate, message):
    import copy

    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(TaxonomyError) as e:
        parse_taxonomy(data, "my.toml")
    assert message in str(e.value)
    assert str(e.value).startswith("my.toml")


def test_invalid_toml_and_missing_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("name = ")
    with pytest.raises(TaxonomyError, match="broken.toml: not valid TOML"):
        load_taxonomy(p)
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope.toml")


def test_index_of_an_unknown_category_names_it():
    t = load_taxonomy(None)
    assert t.index("toxic") == 0 and t.index("spam") == len(t) - 1
    with pytest.raises(KeyError, match="unknown category 'nudity'; the taxonomy has"):
        t.index("nudity")


@pytest.mark.parametrize("field, value, message", [
    ("cost_fn", 0, "my.toml: category[0] (toxic).cost_fn must be > 0.0, got 0.0"),
    ("cost_fp", True, "my.toml: category[0] (toxic).cost_fp must be a number, got True"),
    ("review_recall", 1.01, "my.toml: category[0] (toxic).review_recall must be > 0.0 and <= 1.0, got 1.01"),
    ("block_precision", 0.0, "my.toml: category[0] (toxic).block_precision must be > 0.0 and <= 1.0, got 0.0"),
    ("block_precision", 1.5, "my.toml: category[0] (toxic).block_precision must be > 0.0 and <= 1.0, got 1.5"),
])
def test_number_bounds_exact_messages(field, value, message):
    import copy

    data = copy.deepcopy(GOOD)
    data["category"][0][field] = value
    with pytest.raises(TaxonomyError) as e:
        parse_taxonomy(data, "my.toml")
    assert str(e.value) == message


def test_bounds_are_inclusive_at_the_top_and_names_default():
    import copy

    data = copy.deepcopy(GOOD)
    data["category"][0].update(review_recall=1.0, block_precision=1.0, cost_fn=1e-9)
    del data["name"], data["version"]
    t = parse_taxonomy(data, "my.toml")
    assert t.categories[0].review_recall == 1.0 and t.categories[0].block_precision == 1.0
    assert (t.name, t.version) == ("custom", "1")
    data["category"][0].update(shade="x", colour="y")
    with pytest.raises(TaxonomyError) as e:
        parse_taxonomy(data, "my.toml")
    assert str(e.value) == "my.toml: category[0] (toxic) has unknown field(s): colour, shade"
    for bad in ({"category": "toxic"}, {"category": []}):
        with pytest.raises(TaxonomyError) as e:
            parse_taxonomy(bad, "my.toml")
        assert str(e.value) == "my.toml: needs at least one [[category]] table"
    with pytest.raises(TaxonomyError) as e:
        parse_taxonomy({**GOOD, "version": 2}, "my.toml")
    assert str(e.value) == "my.toml: name and version must be strings"
    with pytest.raises(TaxonomyError) as e:
        parse_taxonomy({**GOOD, "name": 2}, "my.toml")
    assert str(e.value) == "my.toml: name and version must be strings"


def test_definitions_with_quotes_and_backslashes_survive_toml_and_errors_name_the_file(tmp_path):
    import copy

    data = copy.deepcopy(GOOD)
    data["category"][0]["definition"] = 'says "you\\they are" rude'
    p = tmp_path / "mine.toml"
    p.write_text(parse_taxonomy(data).to_toml(), encoding="utf-8")
    assert load_taxonomy(p).categories[0].definition == 'says "you\\they are" rude'
    p.write_text(p.read_text().replace('cost_fn = 1.0', 'cost_fn = -1.0', 1), encoding="utf-8")
    with pytest.raises(TaxonomyError) as e:
        load_taxonomy(p)
    assert str(e.value).startswith(f"{p}: category[0] (toxic).cost_fn must be > 0.0")
    p.write_bytes(b'name = "\xff"\n')
    with pytest.raises(TaxonomyError, match="not UTF-8 text"):
        load_taxonomy(p)
