"""Personal data must not reach the pretraining corpus, the encoder's input, the report or saved artefacts."""

import json
import re

import pytest

from electra.data import load_documents
from segmentation.privacy import PiiScrubber, audit, luhn_valid
from segmentation.schema import DataConfig, SchemaConfig, SyntheticConfig
from segmentation.synthetic import make_synthetic
from tests.helpers import compose_config

N = 400


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(N, seed=0)


def _personal_values(data) -> list[str]:
    """Every planted value plus each customer's e-mail, phone and full name."""
    c = data.customers
    return [p["value"] for p in data.planted_pii] + list(c.email) + list(c.phone) + list(c["name"])


def test_pretraining_corpus_holds_no_personal_data(tmp_path, synthetic):
    data = DataConfig(synthetic=SyntheticConfig(n_customers=N, seed=0), cache_dir=str(tmp_path),
                      schema=SchemaConfig(text_columns=["review", "support_message", "search_queries"],
                                          name_columns=["name"]), split_column="split", filters={"snapshot": 0})
    result = audit(load_documents(data)["text"], _personal_values(synthetic))
    assert result["planted"] > 100 and result["leaked"] == 0 and result["recall"] == 1.0, result["examples"]


def test_segmentation_outputs_hold_no_personal_data(tmp_path, synthetic):
    from segmentation.config import register_configs
    from segmentation.run import run_segmentation

    register_configs()
    out = tmp_path / "out"
    run = run_segmentation(compose_config("segment", [
        "encoder=tfidf", "encoder.progress=false", f"data.synthetic.n_customers={N}", f"data.cache_dir={tmp_path}",
        "cluster.k=6", f"output_dir={out}"]))
    texts = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in
             (".html", ".json", ".md", ".csv", ".yaml")]
    # The encoder's input: the profile texts the fitted pipeline builds.
    _, profiles, _ = run.pipeline._prepare(run.loaded.frame)
    result = audit(texts + profiles, _personal_values(synthetic))
    assert result["leaked"] == 0, result["examples"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scrubbing"]["rules"] and summary["scrubbing"]["replaced"]
    report = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", (out / "report.html").read_text())
    assert not any(cid in report for cid in run.loaded.frame.customer_id)  # examples show masked ids


def test_pretraining_run_records_its_scrubbing_rules(tmp_path, corpus_file):
    from electra.trainer import pretrain
    from tests.helpers import tiny_pretrain_overrides

    run = pretrain(compose_config("pretrain", tiny_pretrain_overrides(tmp_path / "run", corpus_file,
                                                                      "trainer.max_steps=1", "trainer.export=false")))
    record = json.loads((run.run_dir / "privacy.json").read_text())
    assert record["scrub_pii"] is True and set(record["rules"]) == {"email", "iban", "card", "phone", "name"}


def test_card_numbers_need_a_valid_checksum():
    scrub = PiiScrubber()
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert scrub("card 4111-1111-1111-1111 thanks") == "card [CARD] thanks"
    assert scrub("order 12345 on 2024-01-05") == "order 12345 on 2024-01-05"  # not a card, phone or date leak


@pytest.mark.parametrize("text,expected", [
    ("mail me: jo.smith+shop@mail.example.org.", "mail me: [EMAIL]."),
    ("iban GB82 WEST 1234 5698 7654 32 please", "iban [IBAN] please"),
    ("call +44 7911 123456 or 020 7946 0958", "call [PHONE] or [PHONE]"),
])
def test_each_rule_replaces_with_its_placeholder(text, expected):
    assert PiiScrubber()(text) == expected


def test_own_name_is_scrubbed_everywhere_in_the_text():
    assert PiiScrubber()("thanks, Emma Smith. emma here again", ["Emma Smith"]) == "thanks, [NAME]. [NAME] here again"


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown scrubbing rules"):
        PiiScrubber(["email", "ssn"])
