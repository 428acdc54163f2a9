"""Tokenizer training: WordPiece over the corpus, reproducible ids, loadable without this project."""

from collections import Counter

from transformers import AutoTokenizer

from electra.tokenizer import SPECIAL_TOKENS, learn_wordpiece_vocab, train_wordpiece


def test_special_tokens_come_first(tokenizer):
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token == "[MASK]"


def test_training_is_reproducible(corpus):
    first, second = train_wordpiece(corpus, 150), train_wordpiece(list(reversed(corpus)), 150)
    assert first.get_vocab() == second.get_vocab()


def test_merges_follow_frequency_then_alphabet():
    # "ab" occurs 5 times, "cd" 5 times, "ef" once: both frequent pairs merge, ties alphabetically.
    vocab = learn_wordpiece_vocab(Counter({"ab": 5, "cd": 5, "ef": 1}), vocab_size=100, min_frequency=2,
                                  special_tokens=["[PAD]"])
    assert vocab == ["[PAD]", "##b", "##d", "##f", "a", "c", "e", "ab", "cd"]
    capped = learn_wordpiece_vocab(Counter({"ab": 5, "cd": 5}), vocab_size=6, special_tokens=["[PAD]"])
    assert capped == ["[PAD]", "##b", "##d", "a", "c", "ab"]  # the alphabetically first of two equally frequent pairs wins the last slot


def test_vocab_size_is_an_upper_bound(corpus):
    assert len(train_wordpiece(corpus, 60)) == 60
    assert len(train_wordpiece(corpus, 10_000)) < 10_000  # a small corpus runs out of merges


def test_round_trip_through_auto_tokenizer(tokenizer, tmp_path, corpus):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(corpus[:3])["input_ids"] == tokenizer(corpus[:3])["input_ids"]
    assert loaded.decode(loaded(corpus[0])["input_ids"], skip_special_tokens=True) == corpus[0]
