"""A WordPiece tokenizer trained on the pretraining corpus, for models trained from scratch.

Normalisation and pre-tokenisation are BERT's, from the ``tokenizers`` library; the vocabulary is learned
with byte-pair merges over words (as ``tokenizers``' WordPiece trainer does) but here with ties broken by
the symbols themselves. ``tokenizers``' trainer breaks frequency ties in hash-map order, which changes from
process to process, so two runs with the same seed would get different vocabularies and different models.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizer, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONTINUATION = "##"


def count_words(texts: Iterable[str], lowercase: bool = True) -> Counter:
    """Word frequencies after BERT normalisation and pre-tokenisation."""
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase or None)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def learn_wordpiece_vocab(word_counts: Counter, vocab_size: int, min_frequency: int = 2,
                          special_tokens: list[str] = SPECIAL_TOKENS) -> list[str]:
    """Special tokens, then every character (word-initial and ``##`` continuation), then merged pieces.

    Merges the most frequent adjacent pair until ``vocab_size`` tokens exist or no pair occurs
    ``min_frequency`` times; equal counts go to the alphabetically first pair, so the result is a
    function of the word counts alone.
    """
    words = [[w[0], *(CONTINUATION + c for c in w[1:])] for w in sorted(word_counts)]
    freqs = [word_counts[w] for w in sorted(word_counts)]
    vocab = list(special_tokens)
    seen = set(vocab)
    for symbol in sorted({s for symbols in words for s in symbols}):
        if symbol not in seen:
            vocab.append(symbol)
            seen.add(symbol)

    pair_counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    pair_words: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for index, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freqs[index]
            pair_words[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    while len(vocab) < vocab_size and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue  # stale heap entry
        if -neg_count < min_frequency:
            break
        merged = pair[0] + pair[1][len(CONTINUATION):] if pair[1].startswith(CONTINUATION) else pair[0] + pair[1]
        changed: set[tuple[str, str]] = set()
        for index in sorted(pair_words.pop(pair)):
            symbols, freq = words[index], freqs[index]
            for old in zip(symbols, symbols[1:]):
                pair_counts[old] -= freq
                changed.add(old)
            new_symbols, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    new_symbols.append(merged)
                    i += 2
                else:
                    new_symbols.append(symbols[i])
                    i += 1
            words[index] = new_symbols
            for new in zip(new_symbols, new_symbols[1:]):
                pair_counts[new] += freq
                pair_words[new].add(index)
                changed.add(new)
        pair_counts.pop(pair, None)
        for other in changed:
            count = pair_counts.get(other, 0)
            if count > 0 and other != pair:
                heapq.heappush(heap, (-count, other))
        if merged not in seen:
            vocab.append(merged)
            seen.add(merged)
    return vocab


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True,
                    model_max_length: int = 512, min_frequency: int = 2) -> PreTrainedTokenizerBase:
    """Train a BERT-style WordPiece tokenizer on ``texts``; [PAD] gets id 0, as ELECTRA configs expect.

    Returns a ``BertTokenizer`` (what ``AutoTokenizer`` loads for ELECTRA checkpoints), ready for
    ``save_pretrained``. On a small corpus the vocabulary can end up smaller than ``vocab_size``.
    """
    tokens = learn_wordpiece_vocab(count_words(texts, lowercase), vocab_size, min_frequency)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=lowercase,
                              strip_accents=lowercase or None)
    tokenizer.model_max_length = model_max_length
    return tokenizer
