"""Pretraining data: documents, scrubbing, splits and packing."""

import pytest

from electra.data import EpochShuffleSampler, load_documents, pack_documents, packing_efficiency
from segmentation.schema import DataConfig, SchemaConfig, SyntheticConfig


def _synthetic(tmp_path, n=200) -> DataConfig:
    return DataConfig(
        synthetic=SyntheticConfig(n_customers=n, seed=0), cache_dir=str(tmp_path),
        schema=SchemaConfig(text_columns=["review", "support_message", "search_queries"], name_columns=["name"]),
        split_column="split", filters={"snapshot": 0},
    )


def test_documents_come_from_train_split_and_are_scrubbed(tmp_path):
    from segmentation.synthetic import make_synthetic

    data = make_synthetic(200, seed=0)
    docs = load_documents(_synthetic(tmp_path))["text"]
    train = data.customers[(data.customers.snapshot == 0) & (data.customers.split == "train")]
    assert len(docs) == 3 * len(train)
    planted = [p["value"] for p in data.planted_pii]
    assert planted, "the synthetic set must plant personal data"
    assert not [value for value in planted if any(value in doc for doc in docs)]
    assert any("[EMAIL]" in d or "[PHONE]" in d or "[CARD]" in d for d in docs)


def test_scrubbing_can_be_switched_off(tmp_path):
    data = _synthetic(tmp_path)
    data.scrub_pii = False
    docs = load_documents(data)["text"]
    assert not any("[EMAIL]" in d for d in docs) and any("@" in d for d in docs)


def test_plain_text_file_is_one_document_per_line(corpus_file):
    data = DataConfig(name="text", path=str(corpus_file), synthetic=None)
    assert load_documents(data)["text"][:2] == corpus_file.read_text().splitlines()[:2]


def test_missing_text_column_is_named(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("id,comment\n1,hello\n")
    data = DataConfig(path=str(path), synthetic=None, schema=SchemaConfig(text_columns=["review"]))
    with pytest.raises(ValueError, match=r"text columns \['review'\] are not in the data"):
        load_documents(data)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_documents(DataConfig(path=str(tmp_path / "nope.csv"), synthetic=None))


def test_packed_blocks_are_full_and_framed(corpus_file, tokenizer):
    docs = load_documents(DataConfig(path=str(corpus_file), synthetic=None))
    blocks = pack_documents(docs, tokenizer, block_size=32)
    ids = blocks.with_format("numpy")[:]["input_ids"]
    assert ids.shape[1] == 32
    assert (ids[:, 0] == tokenizer.cls_token_id).all()
    n_real = (ids != tokenizer.pad_token_id).sum()
    # Every document's tokens are kept: the stream is tokens + one [SEP] per document, plus framing.
    n_doc_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in docs["text"])
    assert n_real >= n_doc_tokens
    assert packing_efficiency(blocks, tokenizer.pad_token_id) > 0.97


def test_packing_efficiency_on_synthetic_corpus(tmp_path, tokenizer):
    blocks = pack_documents(load_documents(_synthetic(tmp_path, n=300)), tokenizer, block_size=64)
    assert packing_efficiency(blocks, tokenizer.pad_token_id) >= 0.97


def test_epoch_sampler_order_depends_only_on_seed_and_epoch():
    a, b = EpochShuffleSampler(50, seed=3), EpochShuffleSampler(50, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert sorted(a) == list(range(50)) and list(a) != first
