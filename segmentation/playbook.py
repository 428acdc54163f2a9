"""Marketing strategies from segment descriptions: a YAML playbook of rules, each with its evidence.

A playbook has ``rules`` and ``defaults``. A rule fires for a segment when all conditions under ``when``
hold; it recommends text for some of the four fields ``product``, ``price``, ``channel``, ``promotion``.
Rules are tried in file order and, for each field, the first rule that fires and sets it wins (later
firing rules are still listed as supporting evidence); a field no rule sets gets the playbook default.

Conditions (one kind per entry):

    - numeric: avg_order_value        # a numeric column, or a glob such as "purchases_*"
      lift_above: 1.3                 # and/or lift_below, std_diff_above, std_diff_below
    - category: channel               # an over-represented value of a categorical column
      value: phone                    # optional (a value or a list); lift_above optional (default 1.2)
    - terms_any: [discount, coupon]   # any of these among the segment's distinctive terms
      top: 10                         # optional: only the first N terms
    - share_above: 0.2                # segment share of all customers (or share_below)

Recommendation texts may use the matched values: ``{feature}``, ``{label}``, ``{value}``, ``{lift}``,
``{std_diff}``, ``{term}``, ``{share}`` (format specs allowed, e.g. ``{lift:.1f}``). Conditions on columns
the data does not have never fire, so one playbook serves several data sets.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from segmentation.describe import SegmentDescription, feature_label
from segmentation.profiles import humanize

FIELDS = ("product", "price", "channel", "promotion")
KINDS = ("numeric", "category", "terms_any", "share_above", "share_below")
MODIFIERS = {
    "numeric": {"lift_above", "lift_below", "std_diff_above", "std_diff_below"},
    "category": {"value", "lift_above", "min_count"},
    "terms_any": {"top"},
    "share_above": set(),
    "share_below": set(),
}


@dataclass
class Recommendation:
    text: str
    rule: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Strategy:
    segment: int
    name: str
    recommendations: dict[str, Recommendation]
    fired: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Strategy:
        return cls(data["segment"], data["name"], {k: Recommendation(**v) for k, v in data["recommendations"].items()},
                   data["fired"])


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, values: dict) -> str:
    try:
        return template.format_map(_Defaults(values))
    except (ValueError, KeyError, IndexError):  # a format spec applied to a missing value
        return template


class Playbook:
    """Rules over segment descriptions; ``apply`` turns one description into a ``Strategy``."""

    def __init__(self, rules: list[dict], defaults: dict[str, str], source: str = "<dict>"):
        self.rules = rules
        self.defaults = defaults
        self.source = source
        self._validate()

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> Playbook:
        """A playbook file, or the default shipped in ``segmentation/resources/playbook.yaml``."""
        if path is None:
            text = resources.files("segmentation").joinpath("resources/playbook.yaml").read_text(encoding="utf-8")
            source = "segmentation/resources/playbook.yaml"
        else:
            text, source = Path(path).expanduser().read_text(encoding="utf-8"), str(path)
        data = yaml.safe_load(text) or {}
        unknown = set(data) - {"rules", "defaults"}
        if unknown:
            raise ValueError(f"playbook {source}: unknown top-level keys {sorted(unknown)}; expected rules, defaults")
        return cls(data.get("rules") or [], data.get("defaults") or {}, source)

    def _validate(self) -> None:
        missing = [f for f in FIELDS if f not in self.defaults]
        if missing or set(self.defaults) - set(FIELDS):
            raise ValueError(f"playbook {self.source}: defaults must set exactly {list(FIELDS)} "
                             f"(missing {missing}, unknown {sorted(set(self.defaults) - set(FIELDS))})")
        names = set()
        for i, rule in enumerate(self.rules):
            name = rule.get("name", f"#{i + 1}")
            where = f"playbook {self.source}, rule {name!r}"
            if name in names:
                raise ValueError(f"{where}: duplicate rule name")
            names.add(name)
            unknown = set(rule) - {"name", "when", "recommend", "description"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            if not rule.get("when") or not rule.get("recommend"):
                raise ValueError(f"{where}: needs 'when' (a list of conditions) and 'recommend'")
            bad_fields = set(rule["recommend"]) - set(FIELDS)
            if bad_fields:
                raise ValueError(f"{where}: recommend may set {list(FIELDS)}, not {sorted(bad_fields)}")
            for condition in rule["when"]:
                kinds = [k for k in KINDS if k in condition]
                if len(kinds) != 1:
                    raise ValueError(f"{where}: each condition needs exactly one of {list(KINDS)}, got {condition}")
                extra = set(condition) - {kinds[0]} - MODIFIERS[kinds[0]]
                if extra:
                    raise ValueError(f"{where}: {kinds[0]} condition does not take {sorted(extra)} "
                                     f"(allowed: {sorted(MODIFIERS[kinds[0]])})")

    def apply(self, description: SegmentDescription, feature_labels: dict[str, str] | None = None) -> Strategy:
        labels = feature_labels or {}
        chosen: dict[str, Recommendation] = {}
        fired = []
        for i, rule in enumerate(self.rules):
            matches = [_match(c, description, labels) for c in rule["when"]]
            if not all(matches):
                continue
            values: dict = {}
            for match in matches:
                for key, value in match[1].items():
                    values.setdefault(key, value)
            evidence = [m[0] for m in matches]
            name = rule.get("name", f"#{i + 1}")
            fired.append({"rule": name, "evidence": evidence})
            for field_name, template in rule["recommend"].items():
                if field_name not in chosen:
                    chosen[field_name] = Recommendation(_fill(str(template), values), name, evidence)
        for field_name in FIELDS:
            chosen.setdefault(field_name, Recommendation(self.defaults[field_name], "default", ["no rule set this field"]))
        return Strategy(description.segment, description.name, {f: chosen[f] for f in FIELDS}, fired)

    def as_dict(self) -> dict:
        return {"rules": self.rules, "defaults": self.defaults, "source": self.source}


def _match(condition: dict, d: SegmentDescription, labels: dict[str, str]) -> tuple[str, dict] | None:
    """Evidence text and values when ``condition`` holds for the segment, else None."""
    if "numeric" in condition:
        pattern = condition["numeric"]
        best = None
        for s in d.numeric:
            if not fnmatch.fnmatchcase(s.feature, pattern):
                continue
            lift = s.lift if s.lift is not None else float("nan")
            ok = all((
                "lift_above" not in condition or lift > condition["lift_above"],
                "lift_below" not in condition or lift < condition["lift_below"],
                "std_diff_above" not in condition or s.std_diff > condition["std_diff_above"],
                "std_diff_below" not in condition or s.std_diff < condition["std_diff_below"],
            ))
            if ok and (best is None or abs(s.std_diff) > abs(best.std_diff)):
                best = s
        if best is None:
            return None
        label = feature_label(best.feature, labels)
        lift_text = f"lift {best.lift:.2f}×, " if best.lift is not None else ""
        evidence = (f"{label}: segment mean {best.segment_mean:.4g} vs {best.population_mean:.4g} overall "
                    f"({lift_text}{best.std_diff:+.2f} sd)")
        return evidence, {"feature": best.feature, "label": label, "lift": best.lift, "std_diff": best.std_diff,
                          "segment_mean": best.segment_mean, "population_mean": best.population_mean}
    if "category" in condition:
        wanted = condition.get("value")
        wanted = None if wanted is None else {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
        for c in d.categories:  # highest lift first
            if c.feature != condition["category"] or (wanted is not None and c.value not in wanted):
                continue
            if c.lift < condition.get("lift_above", 1.2) or c.count < condition.get("min_count", 1):
                continue
            label = feature_label(c.feature, labels)
            evidence = (f"{label} = {c.value}: {c.segment_share:.0%} of the segment vs {c.population_share:.0%} overall "
                        f"(lift {c.lift:.2f}×, {c.count} customers)")
            return evidence, {"feature": c.feature, "label": label, "value": humanize(c.value), "lift": c.lift,
                              "count": c.count}
        return None
    if "terms_any" in condition:
        words = [str(w).lower() for w in condition["terms_any"]]
        terms = [t for t, _ in d.terms][: condition.get("top", len(d.terms))]
        hits = [(rank, t) for rank, t in enumerate(terms, start=1)
                if any(w == t or w in t.split() or (" " in w and w in t) for w in words)]
        if not hits:
            return None
        evidence = "distinctive terms include " + ", ".join(f"'{t}' (#{rank})" for rank, t in hits)
        return evidence, {"term": hits[0][1]}
    if "share_above" in condition or "share_below" in condition:
        if "share_above" in condition and not d.share > condition["share_above"]:
            return None
        if "share_below" in condition and not d.share < condition["share_below"]:
            return None
        return f"{d.share:.1%} of customers", {"share": d.share}
    return None


def strategies_markdown(strategies: list[Strategy], descriptions: list[SegmentDescription], title: str) -> str:
    """``strategies.md``: one section per segment, each recommendation with the rule and evidence behind it."""
    by_segment = {d.segment: d for d in descriptions}
    lines = [f"# {title}: strategies", "",
             "Each recommendation names the playbook rule that produced it and the segment evidence that fired it.", ""]
    for strategy in strategies:
        d = by_segment[strategy.segment]
        lines += [f"## Segment {strategy.segment}: {strategy.name}", "",
                  f"{d.size} customers ({d.share:.1%}).", "", "| | Recommendation | Rule | Evidence |",
                  "|---|---|---|---|"]
        for field_name, rec in strategy.recommendations.items():
            evidence = "; ".join(rec.evidence).replace("|", "\\|")
            lines.append(f"| **{field_name}** | {rec.text.replace('|', '/')} | {rec.rule} | {evidence} |")
        lines.append("")
    return "\n".join(lines)
