"""Playbook rules fire on the right segments, with evidence; the default playbook loads and validates."""

from __future__ import annotations

import pytest

from segmentation.describe import CategorySignal, NumericSignal, SegmentDescription
from segmentation.playbook import FIELDS, Playbook, strategies_markdown

RULES = [
    {"name": "premium", "when": [{"numeric": "avg_order_value", "lift_above": 1.3}],
     "recommend": {"product": "premium lines", "promotion": "VIP service"}},
    {"name": "discounts", "when": [{"terms_any": ["discount", "coupon"]}],
     "recommend": {"price": "bundles and coupons", "promotion": "coupon mail"}},
    {"name": "category", "when": [{"numeric": "purchases_*", "std_diff_above": 0.8}],
     "recommend": {"product": "lead with {label} ({std_diff:+.1f} sd)"}},
    {"name": "channel", "when": [{"category": "channel", "lift_above": 1.3}],
     "recommend": {"channel": "use {value} ({lift:.1f}x)"}},
    {"name": "big_and_phone", "when": [{"share_above": 0.3}, {"category": "channel", "value": "phone"}],
     "recommend": {"channel": "call centre"}},
]
DEFAULTS = {"product": "best sellers", "price": "standard", "channel": "email", "promotion": "seasonal"}


def segment(segment_id, share=0.2, aov_lift=1.0, terms=(), categories=(), purchases=()):
    numeric = [NumericSignal("avg_order_value", 100 * aov_lift, 100.0, aov_lift, (aov_lift - 1) * 2)]
    numeric += [NumericSignal(f"purchases_{name}", 5.0, 2.0, 2.5, d) for name, d in purchases]
    return SegmentDescription(segment_id, f"s{segment_id}", int(share * 1000), share, numeric=numeric,
                              categories=[CategorySignal("channel", v, 50, 0.5, 0.2, lift) for v, lift in categories],
                              terms=[(t, 1.0 / (i + 1)) for i, t in enumerate(terms)])


@pytest.fixture
def playbook():
    return Playbook(RULES, DEFAULTS)


def test_rules_fire_on_the_right_segments(playbook):
    luxury = playbook.apply(segment(0, aov_lift=2.0, terms=["silk", "designer"]), {"avg_order_value": "spend"})
    assert [f["rule"] for f in luxury.fired] == ["premium"]
    assert luxury.recommendations["product"].text == "premium lines"
    assert luxury.recommendations["product"].evidence == [
        "spend: segment mean 200 vs 100 overall (lift 2.00×, +2.00 sd)"]
    assert luxury.recommendations["price"].rule == "default"

    budget = playbook.apply(segment(1, aov_lift=0.6, terms=["family size", "coupon code", "kids"]))
    assert [f["rule"] for f in budget.fired] == ["discounts"]
    assert budget.recommendations["price"].text == "bundles and coupons"
    assert budget.recommendations["price"].evidence == ["distinctive terms include 'coupon code' (#2)"]


def test_first_firing_rule_wins_each_field_and_templates_are_filled(playbook):
    tech = playbook.apply(segment(2, aov_lift=1.5, terms=["gpu", "discount"], categories=[("mobile_app", 1.8)],
                                  purchases=[("books", 0.9), ("electronics", 2.1)]), {"purchases_electronics": "electronics"})
    assert [f["rule"] for f in tech.fired] == ["premium", "discounts", "category", "channel"]
    assert tech.recommendations["product"].rule == "premium"  # before "category" in the file
    assert tech.recommendations["promotion"].rule == "premium"
    assert tech.recommendations["price"].rule == "discounts"
    assert tech.recommendations["channel"].text == "use mobile app (1.8x)"
    category_rule = [f for f in tech.fired if f["rule"] == "category"][0]
    assert category_rule["evidence"] == ["electronics: segment mean 5 vs 2 overall (lift 2.50×, +2.10 sd)"]


def test_all_conditions_of_a_rule_must_hold(playbook):
    small_phone = playbook.apply(segment(3, share=0.1, categories=[("phone", 2.0)]))
    assert "big_and_phone" not in [f["rule"] for f in small_phone.fired]
    big_phone = playbook.apply(segment(4, share=0.4, categories=[("phone", 2.0)]))
    assert [f["rule"] for f in big_phone.fired] == ["channel", "big_and_phone"]
    assert big_phone.fired[1]["evidence"] == ["40.0% of customers",
                                              "channel = phone: 50% of the segment vs 20% overall (lift 2.00×, 50 customers)"]
    plain = playbook.apply(segment(5))
    assert plain.fired == [] and {f: r.text for f, r in plain.recommendations.items()} == DEFAULTS


@pytest.mark.parametrize("rules,message", [
    ([{"name": "x", "when": [{"numeric": "a", "lift_abov": 2}], "recommend": {"price": "p"}}], r"does not take \['lift_abov'\]"),
    ([{"name": "x", "when": [{"numeric": "a", "category": "b"}], "recommend": {"price": "p"}}], "exactly one of"),
    ([{"name": "x", "when": [{"share_above": 0.1}], "recommend": {"colour": "p"}}], r"not \['colour'\]"),
    ([{"name": "x", "recommend": {"price": "p"}}], "needs 'when'"),
])
def test_invalid_playbooks_fail_loudly(rules, message):
    with pytest.raises(ValueError, match=message):
        Playbook(rules, DEFAULTS)


def test_default_playbook_loads_and_yaml_files_are_checked(tmp_path):
    default = Playbook.from_yaml()
    assert set(default.defaults) == set(FIELDS) and len(default.rules) >= 8
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\ndefaults: {product: a, price: b, channel: c, promotion: d}\nextra: 1\n")
    with pytest.raises(ValueError, match="unknown top-level keys"):
        Playbook.from_yaml(bad)


def test_strategies_markdown_lists_rule_and_evidence(playbook):
    description = segment(0, aov_lift=2.0)
    text = strategies_markdown([playbook.apply(description)], [description], "Title")
    assert "## Segment 0: s0" in text
    assert "| **product** | premium lines | premium | avg order value: segment mean 200 vs 100 overall" in text
