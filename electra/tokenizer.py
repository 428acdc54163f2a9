"""A WordPiece tokenizer trained on the pretraining corpus, for models trained from scratch."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import BertWordPieceTokenizer
from transformers import BertTokenizer, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True,
                    model_max_length: int = 512, min_frequency: int = 2) -> PreTrainedTokenizerBase:
    """Train a BERT-style WordPiece vocabulary on ``texts``; [PAD] gets id 0, as ELECTRA configs expect.

    Returns a ``BertTokenizer`` (what ``AutoTokenizer`` loads for ELECTRA checkpoints), ready for
    ``save_pretrained``. The vocabulary can end up smaller than ``vocab_size`` on a small corpus.
    """
    wordpiece = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=lowercase)
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer = BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=lowercase, strip_accents=lowercase or None)
    tokenizer.model_max_length = model_max_length
    return tokenizer
