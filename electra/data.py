"""Pretraining data: documents from a customer data set, tokenised once, packed into fixed-length blocks.

Packing concatenates tokenised documents separated by [SEP] and cuts the stream into blocks of
``block_size`` tokens ([CLS] chunk [SEP]), as the official ELECTRA data pipeline does, so almost no
compute is spent on padding. Every step is a ``datasets.map`` over files, cached by fingerprint, so a
second run (or the second process) reuses the tokenised blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import datasets
import torch
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase

from segmentation.io import split_file  # one convention for train.* / test.* files
from segmentation.schema import DataConfig

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".jsonl": "json", ".json": "json", ".txt": "text"}


def _builder_for(path: Path, fmt: str) -> str:
    if fmt in ("csv", "parquet", "text"):
        return fmt
    if fmt in ("json", "jsonl"):
        return "json"
    if fmt != "auto":
        raise ValueError(f"unknown data.format {fmt!r}; use auto, csv, parquet, jsonl, text or hub")
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path} from its extension; set data.format") from None


def load_rows(data: DataConfig, split: str | None) -> datasets.Dataset:
    """The rows of one split of a data set as a ``datasets.Dataset`` (filters applied, nothing else)."""
    if data.format == "hub":
        if not data.path:
            raise ValueError("data.format=hub needs data.path, the dataset name")
        rows = datasets.load_dataset(data.path, split=split or data.train_split)
    else:
        if data.path is None:
            if data.synthetic is None:
                raise ValueError(f"data set {data.name!r} has neither data.path nor data.synthetic")
            from segmentation.synthetic import materialize_synthetic

            path = materialize_synthetic(data.synthetic, data.cache_dir)["customers"]
        else:
            path = Path(data.path).expanduser()
        if path.is_dir():
            path = split_file(path, split or data.train_split)
        if not path.exists():
            raise FileNotFoundError(f"data file {path} does not exist (data.path={data.path!r})")
        builder = _builder_for(path, data.format)
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        rows = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        if data.split_column and split is not None:
            if data.split_column not in rows.column_names:
                raise ValueError(f"split column {data.split_column!r} is not in {path} (columns: {rows.column_names})")
            rows = rows.filter(lambda values: [v == split for v in values], input_columns=data.split_column,
                               batched=True)
    for column, value in data.filters.items():
        if column not in rows.column_names:
            raise ValueError(f"filter column {column!r} is not in the data (columns: {rows.column_names})")
        rows = rows.filter(lambda values, value=value: [v == value for v in values], input_columns=column,
                           batched=True)
    return rows


def load_documents(data: DataConfig, split: str | None = None) -> datasets.Dataset:
    """One document per non-empty free-text field (column ``text``), personal data scrubbed by default."""
    rows = load_rows(data, split if split is not None else data.train_split)
    text_columns = list(data.schema.text_columns)
    if rows.column_names == ["text"]:  # a plain-text corpus: one document per line
        text_columns = ["text"]
    missing = [c for c in text_columns if c not in rows.column_names]
    if missing:
        raise ValueError(f"text columns {missing} are not in the data (columns: {rows.column_names}); "
                         "set data.schema.text_columns")
    name_columns = [c for c in data.schema.name_columns if c in rows.column_names] if data.scrub_pii else []
    scrubber = None
    if data.scrub_pii:
        from segmentation.privacy import PiiScrubber

        scrubber = PiiScrubber()

    def to_documents(batch: dict) -> dict:
        texts = []
        n = len(batch[text_columns[0]])
        for i in range(n):
            names = [batch[c][i] for c in name_columns]
            for column in text_columns:
                text = batch[column][i]
                if isinstance(text, str) and text.strip():
                    texts.append(scrubber(text.strip(), names) if scrubber else text.strip())
        return {"text": texts}

    return rows.map(to_documents, batched=True, remove_columns=rows.column_names, desc="documents")


def pack_documents(documents: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, block_size: int,
                   num_proc: int | None = None, map_batch_size: int = 10_000) -> datasets.Dataset:
    """Tokenise and pack documents into blocks of exactly ``block_size`` ids ([CLS] ... [SEP], padded at the end)."""
    if block_size < 8:
        raise ValueError(f"block_size must be at least 8, got {block_size}")
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    body = block_size - 2

    def tokenize(batch: dict) -> dict:
        ids = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"]
        return {"ids": ids}

    def pack(batch: dict) -> dict:
        stream: list[int] = []
        for ids in batch["ids"]:
            if ids:
                stream.extend(ids)
                stream.append(sep_id)
        blocks = []
        for start in range(0, len(stream), body):
            chunk = stream[start:start + body]
            if chunk and chunk[-1] == sep_id:
                chunk = chunk[:-1]  # the block's own [SEP] closes it
            if not chunk:
                continue
            block = [cls_id, *chunk, sep_id]
            blocks.append(block + [pad_id] * (block_size - len(block)))
        return {"input_ids": blocks}

    tokenized = documents.map(tokenize, batched=True, remove_columns=documents.column_names, num_proc=num_proc,
                              desc="tokenising")
    return tokenized.map(pack, batched=True, batch_size=map_batch_size, remove_columns=["ids"], num_proc=num_proc,
                         desc=f"packing into blocks of {block_size}")


def tokenize_documents(documents: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                       num_proc: int | None = None) -> datasets.Dataset:
    """One sequence per document ([CLS] text [SEP], truncated), for sentence-level objectives."""
    def tokenize(batch: dict) -> dict:
        ids = tokenizer(batch["text"], truncation=True, max_length=max_length, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"]
        return {"input_ids": ids}

    return documents.map(tokenize, batched=True, remove_columns=documents.column_names, num_proc=num_proc,
                         desc="tokenising")


def packing_efficiency(packed: datasets.Dataset, pad_token_id: int) -> float:
    """Share of positions that hold a real token rather than padding."""
    ids = packed.with_format("numpy")[:]["input_ids"]
    return float((ids != pad_token_id).mean()) if len(ids) else 0.0


class EpochShuffleSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch): the data order survives a kill and resume."""

    def __init__(self, num_samples: int, seed: int):
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class PadCollator:
    """Stack sequences into a batch, right-padding to the longest (packed blocks need no padding)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        sequences = [torch.as_tensor(e["input_ids"]) for e in examples]
        return {"input_ids": torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True,
                                                             padding_value=self.pad_token_id)}
