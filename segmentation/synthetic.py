"""A synthetic e-commerce customer base with known segments: the project's embedded default data set.

Customers are drawn from latent personas. Every observable (demographics, behaviour, purchases per
category, free text) depends on the persona, with overlap and noise, so that text alone is informative
but not trivially separable. A second snapshot re-draws every customer later in time, with a known
fraction moved to another persona. Fake names, e-mails, phone numbers, card numbers and IBANs are planted
(in their own columns and inside support messages) so that privacy scrubbing has something to act on;
the planted values are returned so that scrubbing recall can be measured exactly.

    from segmentation.synthetic import make_synthetic
    data = make_synthetic(n_customers=5000, seed=0)
    data.customers        # one row per customer and snapshot
    data.corpus           # pretraining text (train split, snapshot 0)
    data.write("data/")   # customers.csv + corpus.txt + planted_pii.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = [
    "electronics", "fashion", "beauty", "groceries", "baby", "home_garden",
    "sports_outdoor", "books", "health", "toys_games",
]
REGIONS = ["north", "south", "east", "west", "central"]
PAYMENT_METHODS = ["credit_card", "debit_card", "paypal", "bank_transfer", "cash_on_delivery", "buy_now_pay_later"]
CHANNELS = ["web", "mobile_app", "phone", "store"]
GENDERS = ["female", "male", "other"]


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    age: tuple[float, float]  # mean, std
    gender: tuple[float, float, float]
    region: tuple[float, ...]
    log_income: tuple[float, float]
    browsing_time: tuple[float, float]  # minutes per week, gamma mean / shape
    purchases_per_year: float
    log_order_value: tuple[float, float]
    payment: tuple[float, ...]
    channel: tuple[float, ...]
    category_affinity: dict[str, float]
    words: tuple[str, ...]  # segment-specific vocabulary
    products: tuple[str, ...]
    complaints: tuple[str, ...]


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "budget_family", 0.22, (38, 7), (0.6, 0.38, 0.02), (0.2, 0.25, 0.2, 0.15, 0.2), (10.6, 0.3), (90, 3), 24,
        (3.4, 0.35), (0.15, 0.35, 0.1, 0.05, 0.2, 0.15), (0.35, 0.4, 0.05, 0.2),
        {"groceries": 5, "baby": 4, "toys_games": 3, "home_garden": 1.5, "health": 1},
        ("discount", "coupon", "value pack", "bundle", "kids", "cheaper", "family size", "multipack",
         "school", "budget", "deal", "voucher", "save money", "bulk"),
        ("diapers", "baby wipes", "cereal", "lunch boxes", "school shoes", "board game", "formula"),
        ("the coupon did not apply", "price went up since last week", "bundle was missing an item"),
    ),
    Persona(
        "tech_enthusiast", 0.18, (29, 6), (0.25, 0.72, 0.03), (0.15, 0.15, 0.3, 0.3, 0.1), (11.0, 0.3), (260, 4), 14,
        (4.9, 0.4), (0.45, 0.15, 0.25, 0.05, 0.0, 0.1), (0.3, 0.65, 0.0, 0.05),
        {"electronics": 7, "toys_games": 2.5, "books": 1},
        ("specs", "firmware", "benchmark", "4k", "wireless", "preorder", "gpu", "latency", "refresh rate",
         "bluetooth", "upgrade", "battery life", "mechanical", "usb-c"),
        ("laptop", "headphones", "graphics card", "smartwatch", "gaming console", "monitor", "keyboard"),
        ("the firmware update bricked it", "ships without the charger", "preorder date slipped again"),
    ),
    Persona(
        "luxury_shopper", 0.14, (45, 9), (0.65, 0.33, 0.02), (0.1, 0.1, 0.2, 0.2, 0.4), (11.9, 0.35), (120, 3), 18,
        (5.6, 0.35), (0.7, 0.05, 0.2, 0.05, 0.0, 0.0), (0.45, 0.25, 0.05, 0.25),
        {"fashion": 6, "beauty": 5, "health": 1},
        ("premium", "designer", "exclusive", "silk", "cashmere", "limited edition", "gift wrapping",
         "concierge", "tailored", "elegant", "vip", "luxury", "handcrafted", "boutique"),
        ("handbag", "perfume", "silk scarf", "leather boots", "serum", "watch", "evening dress"),
        ("the gift wrapping was creased", "expected a personal stylist call", "the box arrived scuffed"),
    ),
    Persona(
        "fitness_outdoor", 0.17, (33, 8), (0.45, 0.53, 0.02), (0.3, 0.2, 0.15, 0.25, 0.1), (11.1, 0.3), (140, 3), 16,
        (4.3, 0.35), (0.3, 0.35, 0.25, 0.05, 0.0, 0.05), (0.35, 0.5, 0.0, 0.15),
        {"sports_outdoor": 6, "health": 3.5, "fashion": 1.5, "groceries": 1},
        ("running", "trail", "protein", "hiking", "workout", "marathon", "breathable", "waterproof",
         "recovery", "camping", "cycling", "training plan", "lightweight", "yoga"),
        ("running shoes", "yoga mat", "protein powder", "tent", "cycling helmet", "fitness tracker", "backpack"),
        ("the sole wore out after a month", "wrong size of running shoes", "protein tub arrived open"),
    ),
    Persona(
        "home_gardener", 0.15, (52, 9), (0.5, 0.48, 0.02), (0.25, 0.3, 0.15, 0.1, 0.2), (11.0, 0.3), (80, 3), 12,
        (4.4, 0.4), (0.3, 0.4, 0.1, 0.15, 0.05, 0.0), (0.5, 0.15, 0.1, 0.25),
        {"home_garden": 7, "books": 1.5, "health": 1},
        ("garden", "seeds", "patio", "diy", "paint", "drill", "compost", "furniture", "renovation",
         "planter", "lawn", "tools", "cushions", "greenhouse"),
        ("cordless drill", "garden hose", "paint roller", "planter box", "lawn mower", "patio chairs", "seeds"),
        ("the drill battery would not charge", "planter arrived cracked", "paint colour did not match"),
    ),
    Persona(
        "senior_traditional", 0.14, (70, 7), (0.55, 0.44, 0.01), (0.2, 0.2, 0.2, 0.2, 0.2), (10.5, 0.3), (40, 2), 9,
        (3.9, 0.35), (0.15, 0.3, 0.05, 0.25, 0.25, 0.0), (0.15, 0.05, 0.5, 0.3),
        {"books": 5, "health": 5, "home_garden": 1.5, "groceries": 1.5},
        ("large print", "easy to use", "phone order", "reading glasses", "grandchildren", "catalogue",
         "home delivery", "arthritis", "crossword", "pension", "clear instructions", "talking to someone",
         "paper invoice", "comfortable"),
        ("novel", "vitamins", "blood pressure monitor", "crossword book", "reading lamp", "slippers", "tea"),
        ("could not find the phone number", "the website text is too small", "invoice was not posted"),
    ),
)

SHARED_WORDS = (
    "order", "delivery", "great", "quality", "fast", "price", "item", "arrived", "happy", "return",
    "recommend", "size", "colour", "service", "package", "again", "website", "app", "good", "okay",
)
REVIEW_TEMPLATES = (
    "{adj} {product}, {w1} and {w2}. {shared}",
    "bought the {product} for the {w1}, {shared}",
    "{shared}. the {product} is {adj}, love the {w1}",
    "really {adj} {product}. {w1}, {w2}, {shared}",
    "{w1} {product} arrived {shared}, {adj} overall",
)
SUPPORT_TEMPLATES = (
    "hello, {complaint}. can you help with my {product} order?",
    "{complaint}. i want a {remedy} for the {product}",
    "my {product} order: {complaint}. please advise about {w1}",
    "hi team, question about {w1} for the {product}. {shared}",
)
ADJECTIVES = ("great", "decent", "excellent", "fine", "solid", "disappointing", "lovely", "average")
REMEDIES = ("refund", "replacement", "exchange", "callback", "discount code")
FIRST_NAMES = ("Alex", "Maria", "John", "Li", "Fatima", "Olga", "Kwame", "Sofia", "Raj", "Emma", "Lucas",
               "Aisha", "Mateo", "Yuki", "Noah", "Zara", "Ivan", "Chloe", "Omar", "Grace")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Patel", "Kim", "Muller", "Rossi", "Silva",
              "Khan", "Brown", "Dubois", "Tanaka", "Nielsen", "Haddad", "Jones", "Kowalski", "Lopez", "Ali")
EMAIL_DOMAINS = ("example.com", "mail.example.org", "inbox.example.net")


@dataclass
class SyntheticData:
    """The generated data set: customers table (both snapshots), pretraining corpus, planted personal data."""

    customers: pd.DataFrame
    corpus: list[str]
    planted_pii: list[dict[str, str]] = field(default_factory=list)

    def write(self, output_dir: str | Path) -> dict[str, Path]:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "customers": out / "customers.csv",
            "corpus": out / "corpus.txt",
            "planted_pii": out / "planted_pii.json",
        }
        self.customers.to_csv(paths["customers"], index=False)
        paths["corpus"].write_text("\n".join(self.corpus) + "\n", encoding="utf-8")
        paths["planted_pii"].write_text(json.dumps(self.planted_pii, indent=1), encoding="utf-8")
        return paths


def luhn_complete(digits: str) -> str:
    """Append the Luhn check digit to ``digits``, giving a number that passes card validation."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # positions that get doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def iban_complete(country: str, bban: str) -> str:
    """A syntactically valid IBAN (mod-97 check digits) for a country code and account number."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


class _Generator:
    def __init__(self, rng: np.random.Generator, personas: tuple[Persona, ...], text_noise: float):
        self.rng = rng
        self.personas = personas
        self.text_noise = text_noise
        self.all_words = [w for p in personas for w in p.words]

    def choice(self, seq, p=None):
        return seq[self.rng.choice(len(seq), p=p)]

    def word(self, persona: Persona) -> str:
        # With probability text_noise the word comes from another persona or the shared pool, so text
        # overlaps between segments instead of being a lookup table.
        u = self.rng.random()
        if u < 1 - self.text_noise:
            return self.choice(persona.words)
        if u < 1 - self.text_noise / 2:
            return self.choice(self.all_words)
        return self.choice(SHARED_WORDS)

    def product(self, persona: Persona) -> str:
        if self.rng.random() < self.text_noise / 2:
            return self.choice(self.choice(self.personas).products)
        return self.choice(persona.products)

    def review(self, persona: Persona) -> str:
        return self.choice(REVIEW_TEMPLATES).format(
            adj=self.choice(ADJECTIVES), product=self.product(persona), w1=self.word(persona),
            w2=self.word(persona), shared=" ".join(self.rng.choice(SHARED_WORDS, size=2, replace=False)),
        )

    def support(self, persona: Persona) -> str:
        return self.choice(SUPPORT_TEMPLATES).format(
            complaint=self.choice(persona.complaints), remedy=self.choice(REMEDIES),
            product=self.product(persona), w1=self.word(persona), shared=self.choice(SHARED_WORDS),
        )

    def searches(self, persona: Persona) -> str:
        n = int(self.rng.integers(2, 5))
        terms = []
        for _ in range(n):
            if self.rng.random() < 0.5:
                terms.append(f"{self.word(persona)} {self.product(persona)}")
            else:
                terms.append(self.word(persona))
        return "; ".join(terms)


def _identity(rng: np.random.Generator, index: int) -> dict[str, str]:
    first, last = FIRST_NAMES[rng.integers(len(FIRST_NAMES))], LAST_NAMES[rng.integers(len(LAST_NAMES))]
    email = f"{first.lower()}.{last.lower()}{index}@{EMAIL_DOMAINS[rng.integers(len(EMAIL_DOMAINS))]}"
    phone = f"+44 7{rng.integers(100, 999)} {rng.integers(100000, 999999)}"
    return {"name": f"{first} {last}", "email": email, "phone": phone}


def _plant_pii(rng: np.random.Generator, text: str, ident: dict[str, str], customer_id: str,
               planted: list[dict[str, str]]) -> str:
    kind = rng.choice(["email", "phone", "card", "iban", "name"])
    if kind == "email":
        value, sentence = ident["email"], "you can reach me at {}"
    elif kind == "phone":
        value, sentence = ident["phone"], "please call me on {}"
    elif kind == "card":
        raw = luhn_complete("4" + "".join(str(d) for d in rng.integers(0, 10, size=14)))
        value, sentence = " ".join(raw[i:i + 4] for i in range(0, 16, 4)), "i paid with card {}"
    elif kind == "iban":
        bban = "WEST" + "".join(str(d) for d in rng.integers(0, 10, size=14))
        iban = iban_complete("GB", bban)
        value, sentence = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)), "refund to my account {}"
    else:
        value, sentence = ident["name"], "regards, {}"
    planted.append({"customer_id": customer_id, "kind": str(kind), "value": value})
    return f"{text} {sentence.format(value)}"


def make_synthetic(
    n_customers: int = 5000,
    seed: int = 0,
    n_segments: int = 6,
    migration_rate: float = 0.15,
    text_noise: float = 0.6,
    pii_rate: float = 0.2,
    test_fraction: float = 0.2,
) -> SyntheticData:
    """Generate the synthetic customer base; deterministic for a given set of arguments.

    Args:
        n_customers: customers per snapshot.
        seed: seed of the only random generator used.
        n_segments: number of latent personas (at most the built-in 6).
        migration_rate: fraction of customers whose persona changes in snapshot 1.
        text_noise: probability that a content word is drawn outside the customer's persona.
        pii_rate: probability that a support message contains planted personal data.
        test_fraction: customers held out (``split == "test"``) and kept out of the corpus.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be positive, got {n_customers}")
    if not 1 <= n_segments <= len(PERSONAS):
        raise ValueError(f"n_segments must be between 1 and {len(PERSONAS)}, got {n_segments}")
    if not 0 <= migration_rate <= 1 or not 0 <= text_noise <= 1 or not 0 <= pii_rate <= 1:
        raise ValueError("migration_rate, text_noise and pii_rate must lie in [0, 1]")

    rng = np.random.default_rng(seed)
    personas = PERSONAS[:n_segments]
    weights = np.array([p.weight for p in personas])
    weights /= weights.sum()
    gen = _Generator(rng, personas, text_noise)

    segment_t0 = rng.choice(n_segments, size=n_customers, p=weights)
    moved = rng.random(n_customers) < migration_rate
    if n_segments > 1:
        shift = rng.integers(1, n_segments, size=n_customers)  # never 0: a mover really changes persona
        segment_t1 = np.where(moved, (segment_t0 + shift) % n_segments, segment_t0)
    else:
        segment_t1, moved = segment_t0.copy(), np.zeros(n_customers, dtype=bool)

    width = len(str(n_customers))
    ids = [f"C{i:0{width}d}" for i in range(n_customers)]
    identities = [_identity(rng, i) for i in range(n_customers)]
    split = np.where(rng.random(n_customers) < test_fraction, "test", "train")
    # Demographics are stable across snapshots; behaviour and text follow the current persona.
    age_noise = rng.standard_normal(n_customers)
    gender_u = rng.random(n_customers)
    region_u = rng.random(n_customers)

    planted: list[dict[str, str]] = []
    rows = []
    for snapshot, segments in ((0, segment_t0), (1, segment_t1)):
        for i in range(n_customers):
            p = personas[segments[i]]
            home = personas[segment_t0[i]]
            age = int(np.clip(round(home.age[0] + home.age[1] * age_noise[i]), 18, 95))
            gender = GENDERS[int(np.searchsorted(np.cumsum(home.gender), gender_u[i] * sum(home.gender)))]
            region_cdf = np.cumsum(home.region) / sum(home.region)
            region = REGIONS[min(int(np.searchsorted(region_cdf, region_u[i])), len(REGIONS) - 1)]
            income = float(np.exp(rng.normal(*p.log_income)))
            browsing = float(rng.gamma(p.browsing_time[1], p.browsing_time[0] / p.browsing_time[1]))
            n_purchases = int(rng.poisson(p.purchases_per_year))
            order_value = float(np.exp(rng.normal(*p.log_order_value)))
            affinity = np.array([p.category_affinity.get(c, 0.3) for c in CATEGORIES])
            affinity = affinity / affinity.sum()
            counts = rng.multinomial(n_purchases, affinity)
            next_probs = rng.dirichlet(affinity * 20)
            next_category = CATEGORIES[int(rng.choice(len(CATEGORIES), p=next_probs))]
            next_set = sorted({next_category} | {CATEGORIES[j] for j in np.flatnonzero(rng.random(len(CATEGORIES)) < next_probs * 1.5)})
            support = gen.support(p)
            if rng.random() < pii_rate:
                support = _plant_pii(rng, support, identities[i], ids[i], planted)
            row = {
                "customer_id": ids[i],
                "snapshot": snapshot,
                "split": split[i],
                **identities[i],
                "age": age,
                "gender": gender,
                "region": region,
                "annual_income": round(income, 2),
                "browsing_time": round(browsing, 1),
                "num_purchases": n_purchases,
                "avg_order_value": round(order_value, 2),
                "payment_method": PAYMENT_METHODS[int(rng.choice(len(PAYMENT_METHODS), p=np.array(p.payment) / sum(p.payment)))],
                "channel": CHANNELS[int(rng.choice(len(CHANNELS), p=np.array(p.channel) / sum(p.channel)))],
                **{f"purchases_{c}": int(k) for c, k in zip(CATEGORIES, counts)},
                "review": gen.review(p),
                "support_message": support,
                "search_queries": gen.searches(p),
                "next_category": next_category,
                "next_categories": ";".join(next_set),
                "true_segment": p.name,
                "moved": bool(moved[i]) if snapshot == 1 else False,
            }
            rows.append(row)
    customers = pd.DataFrame(rows)
    train_t0 = customers[(customers.snapshot == 0) & (customers.split == "train")]
    corpus = [text for cols in train_t0[["review", "support_message", "search_queries"]].itertuples(index=False)
              for text in cols]
    return SyntheticData(customers=customers, corpus=corpus, planted_pii=planted)


def materialize_synthetic(config, cache_dir: str | Path = ".cache") -> dict[str, Path]:
    """Generate the synthetic set for ``config`` (a ``SyntheticConfig``) once, into a cache keyed by its arguments.

    Files are written to a temporary directory and renamed into place, so concurrent callers (several
    training processes) and interrupted runs never see a half-written data set.
    """
    import dataclasses
    import os
    import shutil
    import tempfile

    params = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    key = "_".join(f"{k}{v}" for k, v in sorted(params.items()))
    target = Path(cache_dir) / "synthetic" / key
    paths = {"customers": target / "customers.csv", "corpus": target / "corpus.txt",
             "planted_pii": target / "planted_pii.json"}
    if all(p.exists() for p in paths.values()):
        return paths
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        make_synthetic(**params).write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not all(p.exists() for p in paths.values()):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths
