"""Pretraining throughput: the naive Hugging Face RTD step against this project's step, lever by lever.

    python scripts/bench_pretrain.py                 # ELECTRA-small, seq 128, batch 16, 2 threads
    python scripts/bench_pretrain.py compile=true loss_steps=300
    python scripts/bench_pretrain.py device=cuda model_size=base     # on a GPU machine: bf16 peak and MFU of the GPU
    CUSTOMER_DATA_ROOT=DIR python scripts/bench_pretrain.py   # where banking77/ lives (default ../shared/data)

Prints a ratio table (tokens/s against the naive step measured in the same run, min/median over
repeats), MFU against the measured matmul peak of the dtype each variant computes in, the 2-process
scaling, the loss-curve check, and a final `RESULT key=value ...` line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from electra import benchmark as bench
from electra.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]


def _two_process_tokens_per_s(cfg: DictConfig, variant: dict) -> float | None:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "configs" / "accelerate" / "cpu_2proc.yaml"), str(Path(__file__).resolve()), "mode=worker",
           f"model_size={cfg.model_size}", f"batch_size={cfg.batch_size}", f"seq_len={cfg.seq_len}", f"vocab_size={cfg.vocab_size}",
           f"steps={cfg.steps}", f"warmup={cfg.warmup}", f"repeats={cfg.repeats}", f"output_dir={cfg.output_dir}",
           *(f"variant.{k}={'null' if v is None else v}" for k, v in {"mixed_precision": "no", "compile": False, **variant}.items())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("WORKER ")]
    if proc.returncode != 0 or not lines:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(lines[-1][len("WORKER "):])["tokens_per_s"]


def _worker(cfg: DictConfig) -> None:
    """One of two processes: each runs half the batch; rank 0 reports global tokens/s."""
    from accelerate import PartialState

    torch.set_num_threads(1)
    variant = dict(cfg.variant)
    step = bench.ProjectRTDStep(ModelConfig(**bench.SIZES[cfg.model_size]), cfg.vocab_size, cfg.seq_len, **variant)
    state = PartialState()
    half = cfg.batch_size // state.num_processes
    batches = bench.random_batches(cfg.warmup + cfg.steps, half, cfg.seq_len, cfg.vocab_size, seed=state.process_index)
    rates = []
    for _ in range(cfg.repeats):
        state.wait_for_everyone()
        rates.append(bench.time_steps(step, batches, cfg.warmup) * state.num_processes)
    if state.is_main_process:
        print("WORKER " + json.dumps({"tokens_per_s": sorted(rates)[len(rates) // 2]}), flush=True)


def _loss_curves(cfg: DictConfig, fast: dict) -> dict:
    """Train ELECTRA-small on the synthetic corpus in fp32 and with the fast settings; compare smoothed losses."""
    from electra.tracking import read_metrics

    curves = {}
    for name, overrides in {"fp32": ["trainer.mixed_precision=no"],
                            "fast": [f"trainer.mixed_precision={fast['mixed_precision']}",
                                     f"trainer.compile={str(fast['compile']).lower()}",
                                     *([f"model.attention_dropout={fast['attention_dropout']}"]
                                       if fast["attention_dropout"] is not None else [])]}.items():
        out = Path(cfg.output_dir) / f"loss_{name}"
        subprocess.run([sys.executable, str(REPO / "scripts" / "pretrain.py"), "experiment=small", "logger=none",
                        f"output_dir={out}", f"trainer.max_steps={cfg.loss_steps}", "trainer.log_every_steps=10",
                        "trainer.save_every_steps=100000", "trainer.export=false", "trainer.progress_bar=false",
                        *overrides], check=True, capture_output=True)
        curves[name] = [m["loss"] for m in read_metrics(out / "metrics.jsonl")]
    window = 5  # 5 logged points = 50 steps
    smooth = {k: [sum(v[max(0, i - window + 1):i + 1]) / len(v[max(0, i - window + 1):i + 1]) for i in range(len(v))]
              for k, v in curves.items()}
    rel = [abs(a - b) / b for a, b in zip(smooth["fast"], smooth["fp32"])]
    last = {k: sum(v[-window:]) / len(v[-window:]) for k, v in curves.items()}
    return {"max_rel_diff": max(rel[window:]) if len(rel) > window else max(rel),
            "last_window_rel_diff": abs(last["fast"] - last["fp32"]) / last["fp32"], "fp32": curves["fp32"],
            "fast": curves["fast"]}


def _packing(cfg: DictConfig) -> dict:
    """Share of real (non-padding) tokens in packed blocks vs one padded document per sequence, on the
    documents pretraining reads (configs/data/synthetic.yaml, configs/data/banking77.yaml when present)."""
    from omegaconf import OmegaConf

    from electra.data import load_documents, pack_documents, packing_efficiency
    from electra.tokenizer import train_wordpiece
    from segmentation.schema import DataConfig

    result = {}
    for name in ("synthetic", "banking77"):
        data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig),
                                                   OmegaConf.load(REPO / "configs" / "data" / f"{name}.yaml")))
        if data.path and not Path(data.path).exists():
            continue
        documents = load_documents(data)
        texts = list(documents["text"])
        tokenizer = train_wordpiece(texts, 4000)
        packed = pack_documents(documents, tokenizer, cfg.seq_len)
        lengths = [min(len(ids) + 2, cfg.seq_len) for ids in
                   tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]]
        result[name] = {"documents": len(texts), "packed": packing_efficiency(packed, tokenizer.pad_token_id),
                        "padded_per_document": sum(lengths) / (len(lengths) * cfg.seq_len)}
    return result


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_pretrain")
def main(cfg: DictConfig) -> None:
    if cfg.mode == "worker":
        return _worker(cfg)
    on_gpu = torch.device(cfg.device).type == "cuda"
    if not on_gpu:
        torch.set_num_threads(cfg.threads)
    model_cfg = ModelConfig(**bench.SIZES[cfg.model_size])
    peak_size = 8192 if on_gpu else 2048
    peaks = {name: bench.measure_matmul_peak(dtype, peak_size, device=cfg.device)
             for name, dtype in {"fp32": torch.float32, "bf16": torch.bfloat16}.items()}
    variants = {
        "naive HF step (fp32)": ({}, "fp32"),
        "+ masked-only projection": ({"mixed_precision": "no", "fused_adamw": False}, "fp32"),
        "+ fused AdamW": ({"mixed_precision": "no", "fused_adamw": True}, "fp32"),
        "+ bf16 autocast": ({"mixed_precision": "bf16", "fused_adamw": True}, "bf16"),
        # Attention dropout keeps CPU SDPA on its unfused math path; without it the fused kernel runs.
        "+ no attention dropout": ({"mixed_precision": "bf16", "fused_adamw": True, "attention_dropout": 0.0}, "bf16"),
    }
    if cfg.compile:
        variants["+ torch.compile"] = ({"mixed_precision": "bf16", "fused_adamw": True, "attention_dropout": 0.0,
                                        "compile": True}, "bf16")
    steps = {}
    for name, (options, _) in variants.items():
        torch.manual_seed(0)
        steps[name] = (bench.NaiveRTDStep(model_cfg, cfg.vocab_size, cfg.seq_len, device=cfg.device) if not options
                       else bench.ProjectRTDStep(model_cfg, cfg.vocab_size, cfg.seq_len, cpu=not on_gpu, **options))
    batches = bench.random_batches(cfg.warmup + cfg.steps, cfg.batch_size, cfg.seq_len, cfg.vocab_size,
                                   device=cfg.device)
    timings = bench.interleaved_timings(steps, batches, cfg.warmup, cfg.repeats)

    baseline = timings["naive HF step (fp32)"].median
    shapes = steps["+ masked-only projection"].shapes
    useful = bench.flops_per_token(shapes, cfg.vocab_size, cfg.seq_len)
    naive_flops = bench.flops_per_token(shapes, cfg.vocab_size, cfg.seq_len, projected_share=1.0)
    rows = []
    where = f"{torch.cuda.get_device_name()}" if on_gpu else f"{cfg.threads} threads"
    print(f"ELECTRA-{cfg.model_size}, batch {cfg.batch_size} x {cfg.seq_len}, {cfg.device}")
    print(f"matmul peak ({peak_size}^2, {where}): fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print(f"useful training FLOPs/token: {useful / 1e6:.1f} M (naive step computes {naive_flops / 1e6:.1f} M)")
    print(f"{'variant':32s} {'tok/s min':>10s} {'tok/s med':>10s} {'x naive':>8s} {'MFU':>6s}")
    for name, timing in timings.items():
        dtype = variants[name][1]
        mfu = timing.median * useful / peaks[dtype]
        rows.append({"variant": name, "min": min(timing.tokens_per_s), "median": timing.median,
                     "speedup": timing.median / baseline, "mfu": mfu, "dtype": dtype})
        print(f"{name:32s} {min(timing.tokens_per_s):10.0f} {timing.median:10.0f} {timing.median / baseline:8.2f} "
              f"{mfu:6.1%}")
    best_name = max(timings, key=lambda n: timings[n].median)
    best_options = variants[best_name][0]
    result = {"peaks": peaks, "useful_flops_per_token": useful, "rows": rows, "best": best_name}
    if cfg.packing:
        result["packing"] = _packing(cfg)
        for name, p in result["packing"].items():
            print(f"packing, {name} ({p['documents']:,d} documents, blocks of {cfg.seq_len}): {p['packed']:.1%} real "
                  f"tokens packed vs {p['padded_per_document']:.1%} with one padded document per sequence")
    if cfg.two_process and not on_gpu:
        # Compilation can pay in one process and not in two (each compiles for one thread), so the best
        # uncompiled variant is launched too.
        uncompiled = max((n for n in timings if not variants[n][0].get("compile") and variants[n][0]),
                         key=lambda n: timings[n].median)
        two_process = {}
        for name in dict.fromkeys([best_name, uncompiled]):
            two = _two_process_tokens_per_s(cfg, variants[name][0])
            if two:
                two_process[name] = two
                print(f"2 processes x 1 thread ({name}): {two:.0f} tok/s = {two / timings[name].median:.2f}x "
                      f"1 process x {cfg.threads} threads, {two / baseline:.2f}x naive")
        if two_process:
            result["two_process"] = two_process
            result["two_process_tokens_per_s"] = max(two_process.values())
    if cfg.loss_steps:
        fast = {"mixed_precision": best_options.get("mixed_precision", "no"), "compile": best_options.get("compile", False),
                "attention_dropout": best_options.get("attention_dropout")}
        curves = _loss_curves(cfg, fast)
        result["loss_curves"] = curves
        ok = curves["max_rel_diff"] <= cfg.loss_tolerance
        print(f"loss curve, {cfg.loss_steps} steps, fast vs fp32: max relative difference of the 50-step moving "
              f"average {curves['max_rel_diff']:.3f} ({'within' if ok else 'OUTSIDE'} {cfg.loss_tolerance}); mean of the last "
              f"50 steps {curves['last_window_rel_diff']:.3f} apart")
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.output_dir) / "result.json").write_text(json.dumps(result, indent=1))
    best = timings[best_name]
    summary = {"speedup_vs_naive": best.median / baseline, "mfu": best.median * useful / peaks[variants[best_name][1]],
               "tokens_per_s": best.median, "baseline_tokens_per_s": baseline}
    if "two_process_tokens_per_s" in result:
        fastest = max(result["two_process"], key=result["two_process"].get)
        summary["two_process_speedup_vs_naive"] = result["two_process_tokens_per_s"] / baseline
        summary["two_process_mfu"] = result["two_process_tokens_per_s"] * useful / peaks[variants[fastest][1]]
    for name, p in result.get("packing", {}).items():
        summary[f"packing_{name}"] = p["packed"]
    if "loss_curves" in result:
        summary["loss_max_rel_diff"] = result["loss_curves"]["max_rel_diff"]
    print("RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
