#!/usr/bin/python3
"""Times the PyTorch peer of bench_pipeline (pipelines.py): decoded images to maps and image scores, at batch 1
and 16 (export_onnx.py exports the same modules for ONNX Runtime).

  /usr/bin/python3 benchmarks/peer/bench_pipeline_torch.py [--threads 2] [--repeats 7] [--warmup 2]
        [--configs msflow,fastflow,patchcore,fcl] [--cases score_b1,score_b16] [--size 256] [--weights DIR] [--channels-last]
        [--patchcore-bank ROWS] [--variant NAME] [--json]

Inputs are random 8-bit images (the work does not depend on the pixels). Case fit_epoch (the heads that train):
one epoch of pipelines.fit_epoch, flowad's shared trainer's steps, on --train-images random feature maps of
ResNet18's shapes, a fresh head each of --fit-repeats times (no warm-up). Each case runs --warmup untimed calls,
then --repeats timed calls under torch.inference_mode() with Python's garbage collector off; the median (the
upper one for an even count, as flowad's benchmarks), min and max are reported, with the process's peak RSS.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipelines  # noqa: E402
from bench_torch import names, peak_rss_mb, time_calls  # noqa: E402  (the flows' benchmark's helpers)


def batch_of(case):
    if case == "fit_epoch":
        return 0
    if not case.startswith("score_b") or not case[len("score_b"):].isdigit() or int(case[len("score_b"):]) < 1:
        raise SystemExit(f"bench_pipeline_torch.py: unknown case '{case}' (score_b<N>, N > 0, or fit_epoch)")
    return int(case[len("score_b"):])


def timed(fn, warmup, repeats):
    """(median, min, max) in ms of bench_torch's timed calls: the median is the upper one for an even count."""
    times = sorted(time_calls(fn, warmup, repeats))
    return times[len(times) // 2], times[0], times[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--configs", default="msflow,fastflow,patchcore,fcl")
    p.add_argument("--cases", default="score_b1,score_b16")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--weights", default=None, help="a folder of the ResNet18 .npy weights (default: random)")
    p.add_argument("--patchcore-bank", type=int, default=21401, help="PatchCore's bank rows (flowad's model's)")
    p.add_argument("--fit-repeats", type=int, default=3)
    p.add_argument("--train-images", type=int, default=209)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--variant", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    configs = names(args.configs)
    for config in configs:
        if config not in pipelines.HEADS:
            raise SystemExit(f"bench_pipeline_torch.py: unknown config '{config}' (known: {', '.join(pipelines.HEADS)})")
    variant = args.variant or ("channels_last" if args.channels_last else "stock")
    print(f"torch {torch.__version__}, MKL-DNN: {torch.backends.mkldnn.is_available()}", file=sys.stderr)
    for config in configs:
        options = {"bank": args.patchcore_bank} if config == "patchcore" else {}
        model = pipelines.build(config, args.size, args.weights, args.channels_last, **options)
        macs = pipelines.conv_macs(model, args.size)
        for case in names(args.cases):
            batch = batch_of(case)
            if batch == 0:
                if not hasattr(pipelines.HEADS[config], "loss"):
                    continue  # PatchCore does not train
                generator = torch.Generator().manual_seed(11)
                features = [torch.randn(args.train_images, *shape, generator=generator)
                            for shape in pipelines.FEATURE_SHAPES[config]]
                if args.channels_last:
                    features = [f.contiguous(memory_format=torch.channels_last) for f in features]

                def fit():
                    head = pipelines.HEADS[config](size=args.size)
                    if args.channels_last:
                        head = head.to(memory_format=torch.channels_last)
                    pipelines.fit_epoch(head, features)

                median, low, high = timed(fit, 0, args.fit_repeats)
                row = {"side": "pytorch", "variant": variant, "config": "e2e_" + config, "case": case,
                       "ms_median": median, "ms_min": low, "ms_max": high, "images": args.train_images,
                       "peak_rss_mb": peak_rss_mb(), "threads": args.threads, "repeats": args.fit_repeats,
                       "torch": torch.__version__}
                print(json.dumps(row) if args.json else f"{config:<10} {case:<10} {median:10.1f} ms", flush=True)
                continue
            images = torch.randint(0, 256, (batch, args.size, args.size, 3), dtype=torch.uint8,
                                   generator=torch.Generator().manual_seed(7))

            def step():
                with torch.inference_mode():
                    model(images)

            median, low, high = timed(step, args.warmup, args.repeats)
            row = {"side": "pytorch", "variant": variant, "config": "e2e_" + config, "case": case, "ms_median": median,
                   "ms_min": low, "ms_max": high, "images_per_s": batch / (median * 1e-3),
                   "conv_macs_per_image": macs, "peak_rss_mb": peak_rss_mb(), "threads": args.threads,
                   "repeats": args.repeats, "torch": torch.__version__}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{config:<10} {case:<10} {median:10.2f} ms (min {low:.2f}, max {high:.2f})  "
                      f"{row['images_per_s']:8.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
