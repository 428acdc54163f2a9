"""The RTD objective: masking, sampling, labels, losses, embedding sharing (tiny models, seeded)."""

import pytest
import torch
import torch.nn.functional as F

from electra.modeling import GradientDisentangledEmbedding, build_objective
from electra.objective import (MaskedLanguageModeling, ReplacedTokenDetection, corrupt_with_mask, sample_tokens,
                               select_positions)


def _batch(tokenizer, texts, length=24):
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    ids = enc["input_ids"]
    maskable = ~torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    return ids, maskable, enc["attention_mask"]


@pytest.fixture
def rtd(tiny_model_config, tokenizer):
    torch.manual_seed(0)
    return build_objective(tiny_model_config, tokenizer)


def test_selection_and_mask_proportions_over_many_draws():
    torch.manual_seed(0)
    maskable = torch.ones(200, 128, dtype=torch.bool)
    maskable[:, :3] = False  # special tokens / padding
    selected = select_positions(maskable, 0.15)
    masked = corrupt_with_mask(torch.full((200, 128), 7), selected, mask_token_id=4, mask_token_prob=0.85)
    assert not selected[:, :3].any()
    assert selected.sum() / maskable.sum() == pytest.approx(0.15, abs=0.005)
    masked_share = (masked[selected] == 4).float().mean()
    assert masked_share == pytest.approx(0.85, abs=0.01)
    assert (masked[~selected] == 7).all()  # nothing outside the selection changes


def test_discriminator_labels_are_sampled_not_equal_original(rtd, tokenizer, corpus):
    torch.manual_seed(1)
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    out = rtd(ids, maskable, attention)
    corrupted = out.corrupted_ids
    assert torch.equal(corrupted[~out.selected], ids[~out.selected])
    assert torch.equal(out.disc_labels, (corrupted != ids) & maskable)
    # A sampled token equal to the original counts as original.
    same = out.selected & (corrupted == ids)
    assert not out.disc_labels[same].any()


def test_correct_samples_count_as_original(rtd, tokenizer, corpus, monkeypatch):
    ids, maskable, attention = _batch(tokenizer, corpus[:4])

    def echo_originals(logits, temperature, method):  # a perfect generator
        return ids[select_calls[-1]]

    select_calls = []
    real_select = select_positions

    def recording_select(m, p):
        sel = real_select(m, p)
        select_calls.append(sel)
        return sel

    monkeypatch.setattr("electra.objective.select_positions", recording_select)
    monkeypatch.setattr("electra.objective.sample_tokens", echo_originals)
    out = rtd(ids, maskable, attention)
    assert out.selected.any()
    assert not out.disc_labels.any()
    assert out.replaced_fraction.item() == 0.0


def test_generator_projects_only_selected_positions(rtd, tokenizer, corpus):
    rows = []
    hook = rtd.generator.generator_lm_head.register_forward_hook(lambda m, inp, out: rows.append(inp[0].shape[0]))
    torch.manual_seed(2)
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    out = rtd(ids, maskable, attention)
    hook.remove()
    n_selected = int(out.selected.sum())
    assert rows == [n_selected]
    assert out.gen_logits.shape == (n_selected, len(tokenizer))
    assert n_selected < int(maskable.sum()) // 3


def test_loss_is_gen_plus_weighted_disc(rtd, tokenizer, corpus):
    torch.manual_seed(3)
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    out = rtd(ids, maskable, attention)
    assert rtd.disc_weight == 50.0
    assert torch.allclose(out.loss, out.gen_loss + 50.0 * out.disc_loss)
    # The discriminator loss is the mean BCE over real, non-special tokens only.
    expected = F.binary_cross_entropy_with_logits(out.disc_logits[maskable], out.disc_labels[maskable].float())
    assert torch.allclose(out.disc_loss, expected, atol=1e-6)


def test_padding_and_special_tokens_take_no_part(rtd, tokenizer, corpus):
    torch.manual_seed(4)
    ids, maskable, attention = _batch(tokenizer, ["great price", corpus[0]], length=32)
    assert (attention == 0).any()
    for _ in range(20):
        out = rtd(ids, maskable, attention)
        assert not out.selected[attention == 0].any()
        assert not out.selected[ids == tokenizer.cls_token_id].any()
        assert not out.disc_labels[~maskable].any()
        assert torch.equal(out.corrupted_ids[attention == 0], ids[attention == 0])


def test_metrics_are_consistent(rtd, tokenizer, corpus):
    torch.manual_seed(5)
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    out = rtd(ids, maskable, attention)
    labels = out.disc_labels[maskable]
    predicted = out.disc_logits[maskable] > 0
    assert out.replaced_fraction.item() == pytest.approx(labels.float().mean().item())
    assert out.disc_accuracy.item() == pytest.approx((predicted == labels).float().mean().item())
    tp = (predicted & labels).sum().item()
    assert out.disc_recall.item() == pytest.approx(tp / max(labels.sum().item(), 1))
    assert out.disc_precision.item() == pytest.approx(tp / max(predicted.sum().item(), 1))
    assert set(out.metrics()) == {"loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy",
                                  "replaced_fraction", "disc_precision", "disc_recall"}


def test_embeddings_are_shared_tensors(rtd, tokenizer, corpus):
    disc_emb = rtd.discriminator.embeddings
    assert rtd.generator.electra.embeddings is disc_emb
    assert rtd.generator.generator_lm_head.weight is disc_emb.word_embeddings.weight
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    before = disc_emb.word_embeddings.weight.detach().clone()
    optimizer = torch.optim.AdamW(rtd.parameters(), lr=1e-2)
    rtd(ids, maskable, attention).loss.backward()
    optimizer.step()
    assert not torch.equal(before, disc_emb.word_embeddings.weight)
    assert rtd.generator.generator_lm_head.weight is disc_emb.word_embeddings.weight
    # Counted once: the optimizer must not update the shared matrix twice.
    assert sum(p is disc_emb.word_embeddings.weight for p in rtd.parameters()) == 1


def test_gdes_keeps_discriminator_gradient_out_of_shared_embeddings(tiny_model_config, tokenizer, corpus):
    tiny_model_config.embedding_sharing = "gdes"
    torch.manual_seed(0)
    rtd = build_objective(tiny_model_config, tokenizer)
    disc_word = rtd.discriminator.embeddings.word_embeddings
    assert isinstance(disc_word, GradientDisentangledEmbedding)
    shared = rtd.generator.electra.embeddings.word_embeddings
    assert disc_word.shared is shared and rtd.generator.generator_lm_head.weight is shared.weight
    assert torch.count_nonzero(disc_word.delta) == 0  # the discriminator starts from E itself
    ids, maskable, attention = _batch(tokenizer, corpus[:8])

    out = rtd(ids, maskable, attention)
    hidden = rtd.discriminator(input_ids=out.corrupted_ids, attention_mask=attention).last_hidden_state
    disc_loss = F.binary_cross_entropy_with_logits(rtd.disc_head(hidden)[maskable], out.disc_labels[maskable].float())
    disc_loss.backward()
    assert shared.weight.grad is None or torch.count_nonzero(shared.weight.grad) == 0
    assert torch.count_nonzero(disc_word.delta.grad) > 0

    rtd.zero_grad()
    gen_only = rtd.generator_logits(ids, out.selected, attention)
    F.cross_entropy(gen_only, ids[out.selected]).backward()
    assert torch.count_nonzero(shared.weight.grad) > 0
    assert disc_word.delta.grad is None or torch.count_nonzero(disc_word.delta.grad) == 0


def test_gdes_view_equals_sum_of_shared_and_delta(tokenizer):
    shared = torch.nn.Embedding(10, 4)
    gdes = GradientDisentangledEmbedding(shared)
    with torch.no_grad():
        gdes.delta.fill_(0.5)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(gdes(ids), shared(ids) + 0.5)
    assert torch.allclose(gdes.materialize().weight, shared.weight + 0.5)


def test_mlm_objective_uses_same_masking_and_tied_head(tiny_model_config, tokenizer, corpus):
    tiny_model_config.objective = "mlm"
    torch.manual_seed(0)
    mlm = build_objective(tiny_model_config, tokenizer)
    assert isinstance(mlm, MaskedLanguageModeling)
    assert mlm.head.word_embeddings is mlm.encoder.get_input_embeddings()
    ids, maskable, attention = _batch(tokenizer, corpus[:8])
    out = mlm(ids, maskable, attention)
    assert torch.equal(out.loss.detach(), out.gen_loss)
    assert out.disc_loss.item() == 0.0
    assert out.gen_logits.shape == (int(out.selected.sum()), len(tokenizer))


def test_sampling_follows_softmax_and_temperature():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(20000, 1)
    for method in ("gumbel", "multinomial"):
        counts = torch.bincount(sample_tokens(logits, 1.0, method), minlength=3).float() / 20000
        assert torch.allclose(counts, torch.tensor([0.7, 0.2, 0.1]), atol=0.015)
    cold = sample_tokens(logits, 0.01, "gumbel")
    assert (cold == 0).float().mean() > 0.999
    with pytest.raises(ValueError, match="unknown sampling method"):
        sample_tokens(logits, 1.0, "beam")


def test_sampling_carries_no_gradient():
    logits = torch.randn(5, 11, requires_grad=True)
    assert not sample_tokens(logits).requires_grad


def test_rtd_rejects_unknown_sampling(rtd):
    with pytest.raises(ValueError, match="unknown sampling method 'top_k'"):
        ReplacedTokenDetection(rtd.generator, rtd.discriminator, rtd.disc_head, 4, sampling="top_k")


def test_empty_selection_gives_finite_zero_generator_loss(rtd, tokenizer):
    ids, maskable, attention = _batch(tokenizer, ["hello"], length=8)
    out = rtd(ids, torch.zeros_like(maskable), attention)
    assert out.gen_loss.item() == 0.0 and torch.isfinite(out.loss)


def test_simcse_loss_is_in_batch_cross_entropy_of_cosines(tiny_bert_dir, tokenizer, corpus):
    from transformers import AutoModel

    from electra.contrastive import SimCSE, pool

    encoder = AutoModel.from_pretrained(tiny_bert_dir)
    encoder.eval()  # no dropout: both views are identical, so the loss is computable by hand
    simcse = SimCSE(encoder, pooling="mean", temperature=0.05)
    batch = tokenizer(corpus[:6], padding=True, return_tensors="pt")
    out = simcse(batch["input_ids"], None, batch["attention_mask"])
    with torch.no_grad():
        z = F.normalize(pool(encoder(**batch).last_hidden_state, batch["attention_mask"], "mean"), dim=-1)
        expected = F.cross_entropy(z @ z.T / 0.05, torch.arange(6))
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert out.accuracy.item() == 1.0  # identical views: every text finds itself
    assert set(out.metrics()) == {"loss", "contrastive_accuracy"}


def test_mean_pooling_ignores_padding():
    from electra.contrastive import pool

    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert pool(hidden, torch.tensor([[1, 1, 0]]), "mean").item() == 2.0
    assert pool(hidden, None, "cls").item() == 1.0
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, None, "max")
