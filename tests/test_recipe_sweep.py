"""scripts/recipe_sweep.py's selection rule: a candidate must beat the control on the suite without losing
gate AUPRC or validation AUPRC; the rule refuses as well as chooses."""

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("recipe_sweep", Path(__file__).resolve().parent.parent / "scripts" / "recipe_sweep.py")
sweep = importlib.util.module_from_spec(spec)
sys.modules["recipe_sweep"] = sweep  # dataclasses look their module up there
spec.loader.exec_module(sweep)


def _result(gate_violence: float, val: float, passed: int, insults: int = 10, gate_self_harm: float = 0.9) -> dict:
    gate = {c: {"auprc": 0.5, "positives": 50} for c in ("toxic", "hate", "violence")}
    gate["violence"] = {"auprc": gate_violence, "positives": 34}
    gate["self_harm"] = {"auprc": gate_self_harm, "positives": 9}
    caps = {"insult_no_identity": {"passed": insults}, "spam": {"passed": passed - insults}}
    return {"gate": gate, "best_val_macro_auprc": val, "behavioural": {"passed": passed, "capabilities": caps}}


def test_rule_chooses_a_candidate_whose_every_seed_beats_every_control(monkeypatch):
    monkeypatch.setitem(sweep.RECIPES, "spam_misinfo_seed1", sweep.Recipe("spam_misinfo_seed1", seed=1))
    monkeypatch.setitem(sweep.RECIPES, "spam_misinfo_selfharm_seed1", sweep.Recipe("spam_misinfo_selfharm_seed1", seed=1))
    controls = {"control": _result(0.40, 0.70, 300), "control_seed1": _result(0.38, 0.70, 293)}
    chosen, why = sweep.choose({**controls, "spam_misinfo": _result(0.39, 0.699, 315), "spam_misinfo_seed1": _result(0.40, 0.70, 316),
                                "spam_misinfo_selfharm": _result(0.40, 0.70, 320), "spam_misinfo_selfharm_seed1": _result(0.40, 0.70, 318)})
    assert chosen == "spam_misinfo_selfharm"  # its worse seed (318) beats the other's worse seed (315)
    assert [w for w in why if "seed(s)" in w] == ["spam_misinfo: 2 seed(s) of 2 -> eligible",
                                                  "spam_misinfo_selfharm: 2 seed(s) of 2 -> eligible"]
    assert sum("vs control" in w for w in why) == 8  # each of the 4 runs against each of the 2 controls


def test_rule_refuses_one_seed_a_gate_loss_a_validation_loss_or_too_small_a_gain(monkeypatch):
    for name in ("spam_misinfo_seed1", "spam_misinfo_selfharm_seed1", "all_candidate_families_seed1", "only_spam", "only_spam_seed1"):
        monkeypatch.setitem(sweep.RECIPES, name, sweep.Recipe(name, seed=1))
    good = _result(0.40, 0.70, 320)
    results = {"control": _result(0.40, 0.70, 300),
               "spam_only": _result(0.40, 0.70, 330),  # one seed only
               "spam_misinfo": good, "spam_misinfo_seed1": _result(0.35, 0.70, 320),  # violence gate -0.05 in one seed
               "spam_misinfo_selfharm": good, "spam_misinfo_selfharm_seed1": _result(0.40, 0.69, 320),  # validation -0.01
               "all_candidate_families": good, "all_candidate_families_seed1": _result(0.40, 0.70, 313),  # +13 only
               "only_spam": good, "only_spam_seed1": _result(0.40, 0.70, 320, insults=5)}  # insults lose 5 cases
    chosen, why = sweep.choose(results)
    assert chosen is None and all("refused" in w for w in why if "seed(s)" in w)
    assert sweep.choose({"spam_misinfo": _result(0.4, 0.7, 350)})[0] is None  # no control, no choice


def test_a_category_with_too_few_gate_positives_cannot_veto(monkeypatch):
    """9 self_harm gate positives: one swapped rank moves AUPRC by 0.1; the promotion gate needs 20 too."""
    monkeypatch.setitem(sweep.RECIPES, "spam_misinfo_seed1", sweep.Recipe("spam_misinfo_seed1", seed=1))
    chosen, _ = sweep.choose({"control": _result(0.40, 0.70, 300), "spam_misinfo": _result(0.40, 0.70, 315, gate_self_harm=0.7),
                              "spam_misinfo_seed1": _result(0.40, 0.70, 315)})
    assert chosen == "spam_misinfo"


def test_control_and_measurement_only_recipes_are_never_candidates():
    assert not sweep.RECIPES["control"].candidate and not sweep.RECIPES["heldout_control"].candidate
    assert set(sweep.RECIPES["heldout_control"].exclude) == set(sweep.HELDOUT)


def test_seed_spread_raises_the_bars_only_as_far_as_two_runs_of_one_recipe_differ():
    quiet = sweep.seed_spread(_result(0.40, 0.70, 300), _result(0.41, 0.701, 301, insults=11))
    assert quiet["suite"] == 1 and quiet["capabilities"] == {"insult_no_identity": 1, "spam": 0}
    assert "self_harm" not in quiet["gate"]  # 9 positives: not a bar
    assert quiet["next_sweep_bars"] == {"min_suite_gain": 4, "max_capability_loss": 2, "max_gate_drop": 0.03,
                                        "max_validation_drop": 0.005, "two_seeds_per_candidate": False}
    noisy = sweep.seed_spread(_result(0.40, 0.70, 300), _result(0.35, 0.69, 295, insults=6))
    bars = noisy["next_sweep_bars"]
    assert bars["min_suite_gain"] == 10 and bars["max_capability_loss"] == 4 and bars["two_seeds_per_candidate"]
    assert bars["max_gate_drop"] == 0.05 and bars["max_validation_drop"] == 0.01
    assert sweep.RECIPES["control_seed1"].seed == 1 and not sweep.RECIPES["control_seed1"].candidate


def test_a_run_of_no_recipe_here_is_listed_but_never_judged():
    # runs/recipes may hold runs of a mechanism since removed (the 2026-12-02 soup); choose() must not crash on them
    controls = {"control": _result(0.40, 0.70, 300), "control_seed1": _result(0.38, 0.70, 293)}
    chosen, why = sweep.choose({**controls, "control_soup": _result(0.50, 0.80, 340)})
    assert chosen is None and "control_soup: not a recipe of this script, not judged" in why
    assert "control_soup" not in sweep.RECIPES


def test_edos_scoping_unlabels_hate_only_on_not_sexist_training_posts_that_name_another_group():
    from moderation.training.data import Example

    def ex(text, hate, split="train", source="edos_sexism"):
        return Example(f"{source}:{text}", text, source, {"hate": hate, "spam": 0.0}, split=split)

    before = [ex("Islam is satanic", 0.0), ex("Women drivers, am I right", 0.0), ex("Muslims should be banned", 1.0),
              ex("Islam is satanic too", 0.0, split="validation"), ex("Islam is satanic again", 0.0, source="gab_hate_corpus")]
    after = sweep.scope_edos_hate(before)
    assert [e.labels["hate"] for e in after] == [None, 0.0, 1.0, 0.0, 0.0]
    assert after[0].labels["spam"] == 0.0 and before[0].labels["hate"] == 0.0  # other labels kept; input untouched
