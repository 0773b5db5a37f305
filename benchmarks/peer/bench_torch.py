#!/usr/bin/python3
"""Times the PyTorch peer of flowad's flows (issue 5): for each flow, scoring at batch 1 and 16 and one
training step at batch 16.

  /usr/bin/python3 benchmarks/peer/bench_torch.py [--threads 2] [--channels-last] [--repeats 10]
        [--warmup 2] [--configs msflow_seed,fastflow_256] [--cases score_b1,score_b16,train_b16]
        [--variant NAME] [--jit] [--json]

Cases (config/case):
  msflow_seed   304x24x24   ActNorm + 8 x [Permute, HierarchicalCoupling(4 groups, hidden 512, k 3,1)]
  fastflow_256  256x64x64   8 x [HierarchicalCoupling(2 groups, hidden 128, k 3,1), GlobalAffine, Permute]
  score_b1, score_b16       forward under torch.inference_mode(), anomaly map mean_c(z^2)/2, top-3% image score
  train_b16                 zero_grad, forward, NLL loss, backward, clip_grad_norm_(1.0), Adam step

Every case runs `--warmup` untimed calls, then `--repeats` timed calls (wall time, Python's garbage
collector off while timing); the median (the upper one for an even count, as bench_flow), min and max
are reported. --configs and --cases select like bench_flow's options of the same names. Inputs are standard normal.
flops_per_batch is 2 x the multiply-accumulates of the convolutions (x3 for training: forward,
backward-data, backward-weights), counted from the convolution shapes. peak_rss_mb is the process's
maximum resident set size so far (getrusage), so the last line holds the peak of the whole run.

--jit runs the scoring cases through torch.jit.trace + torch.jit.freeze + torch.jit.optimize_for_inference
(training stays eager). Not one of the standard variants: at 2 threads eager already runs every
convolution through MKL-DNN; it matters at 1 thread, where eager PyTorch sends 1x1 convolutions at
batch < 16 to its BLAS path (thnn_conv2d), which Debian's reference BLAS makes very slow.

With --json, one JSON object per case on stdout; otherwise a readable table. The torch version and
whether MKL-DNN (oneDNN) is available go to stderr.
"""

import argparse
import gc
import json
import os
import resource
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flows  # noqa: E402  (the modules next to this script)

CASES = [("score_b1", 1, False), ("score_b16", 16, False), ("train_b16", 16, True)]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def names(text):
    return [p.strip() for p in text.split(",") if p.strip()]


def time_calls(fn, warmup, repeats):
    """Wall times in ms of `repeats` calls of fn after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        gc.enable()
    return times


class _Scorer(torch.nn.Module):
    """flows.score as a module, for tracing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        z, _ = self.model(x)
        return flows.anomaly_scores(z)


def jit_scorer(model, x):
    """Scoring of x's shape through a traced, frozen and inference-optimised copy of the model."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trace fixes k of the top-k and the memory-format branch: intended
        module = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(_Scorer(model).eval(), x)))

    def fn():
        with torch.inference_mode():
            return module(x)
    return fn


def run_config(config, todo, args, memory_format):
    """Times the cases `todo` of one flow; yields one result row per case."""
    model, (c, h, w) = flows.build(config, small=args.small)
    generator = torch.Generator().manual_seed(args.seed)
    # flowad's fit() initialises the input ActNorm from the training set; a random batch stands in.
    model.initialize(torch.randn(16, c, h, w, generator=generator))
    model = model.to(memory_format=memory_format)
    macs_per_image = flows.conv_macs(model, h, w)
    optimizer = None
    for case, batch, training in todo:
        x = torch.randn(batch, c, h, w, generator=generator).contiguous(memory_format=memory_format)
        if training:
            model.train()
            if optimizer is None:
                optimizer = flows.make_optimizer(model)

            def fn():
                flows.train_step(model, optimizer, x)
        else:
            model.eval()
            if args.jit:
                fn = jit_scorer(model, x)
            else:
                def fn():
                    flows.score(model, x)
        times = time_calls(fn, args.warmup, args.repeats)
        median = sorted(times)[len(times) // 2]
        flops = 2.0 * macs_per_image * batch * (3 if training else 1)
        yield {
            "side": "pytorch", "variant": None, "config": config, "case": case,
            "batch": batch, "shape": [c, h, w], "threads": args.threads, "repeats": args.repeats,
            "ms_median": round(median, 3), "ms_min": round(min(times), 3), "ms_max": round(max(times), 3),
            "images_per_s": round(batch / (median * 1e-3), 3),
            "flops_per_batch": flops, "gflops": round(flops / (median * 1e-3) * 1e-9, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "channels_last": args.channels_last, "jit": args.jit and not training, "small": args.small,
        }


def cpu_capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--channels-last", action="store_true", help="model and inputs in torch.channels_last")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per case (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    parser.add_argument("--configs", default="", help="comma-separated configs (default: all): "
                        + ", ".join(flows.CONFIGS))
    parser.add_argument("--cases", default="", help="comma-separated cases (default: all): "
                        + ", ".join(c for c, _, _ in CASES))
    parser.add_argument("--variant", default=None,
                        help="name recorded in the output (default: stock, channels_last, or channels_last+tcmalloc "
                             "when tcmalloc is in LD_PRELOAD)")
    parser.add_argument("--jit", action="store_true",
                        help="scoring through torch.jit.trace + freeze + optimize_for_inference")
    parser.add_argument("--json", action="store_true", help="one JSON object per case on stdout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help=argparse.SUPPRESS)  # reduced shapes, development only
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads and --repeats must be positive, --warmup non-negative")

    torch.set_num_threads(args.threads)
    tcmalloc = "tcmalloc" in os.environ.get("LD_PRELOAD", "")
    variant = args.variant
    if variant is None:
        variant = ("channels_last" if args.channels_last else "stock") + ("+tcmalloc" if tcmalloc else "") \
            + ("+jit" if args.jit else "")
    configs, cases = names(args.configs), names(args.cases)
    unknown = [c for c in configs if c not in flows.CONFIGS] + [c for c in cases if c not in {n for n, _, _ in CASES}]
    if unknown:
        parser.error(f"unknown config or case {unknown}")

    mkldnn = torch.backends.mkldnn.is_available()
    print(f"torch {torch.__version__}, mkldnn available: {mkldnn} (enabled: {torch.backends.mkldnn.enabled}), "
          f"CPU capability: {cpu_capability()}, threads: {torch.get_num_threads()}, variant: {variant}, "
          f"channels_last: {args.channels_last}, LD_PRELOAD: {os.environ.get('LD_PRELOAD', '') or '-'}"
          + (", SMALL SHAPES" if args.small else ""), file=sys.stderr, flush=True)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    if not args.json:
        print(f"{'config':<14} {'case':<10} {'ms median':>10} {'min':>9} {'max':>9} {'images/s':>9} "
              f"{'GFLOP/s':>8} {'peak RSS MB':>11}", flush=True)
    for config in flows.CONFIGS:
        todo = [c for c in CASES if not cases or c[0] in cases]
        if (configs and config not in configs) or not todo:
            continue
        # One function call per config, so that its model and optimizer are freed before the next one.
        for row in run_config(config, todo, args, memory_format):
            row.update({"variant": variant, "torch": torch.__version__, "mkldnn": mkldnn,
                        "allocator": "tcmalloc" if tcmalloc else "default"})
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{config:<14} {row['case']:<10} {row['ms_median']:>10.2f} {row['ms_min']:>9.2f} "
                      f"{row['ms_max']:>9.2f} {row['images_per_s']:>9.1f} {row['gflops']:>8.1f} "
                      f"{row['peak_rss_mb']:>11.0f}", flush=True)
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
