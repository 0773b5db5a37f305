#!/usr/bin/python3
"""Times PyTorch's image preparation beside flowad's bench_image_io: read and decode one MVTec bottle image
(the 900 x 900 PNG, and the same image as a quality-95 JPEG that bench_image_io writes), convert to floats and
resize to 256 x 256 (bilinear, antialiased), on one thread, as flowad prepares each image on one thread.

  /usr/bin/python3 benchmarks/peer/bench_decode_torch.py --png FILE --jpeg FILE [--repeats 9] [--json]

Uses torchvision.io (python3-torchvision: libpng and libjpeg underneath) and
torchvision.transforms.functional.resize(antialias=True). Prints one JSON line per format with --json.
"""

import argparse
import gc
import json
import os
import resource
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--png", required=True)
    p.add_argument("--jpeg", required=True)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--variant", default="torchvision")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    import torchvision.io as tio
    import torchvision.transforms.functional as TF

    def prepare(path):
        data = tio.read_file(path)
        image = tio.decode_image(data, mode=tio.ImageReadMode.RGB)
        pixels = image.float().div_(255.0)
        return TF.resize(pixels, [256, 256], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)

    for case, path in (("prepare_png", args.png), ("prepare_jpeg", args.jpeg)):
        if not os.path.exists(path):
            raise SystemExit(f"bench_decode_torch.py: {path} is missing")
        for _ in range(2):
            prepare(path)
        gc.disable()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            prepare(path)
            times.append((time.perf_counter() - t0) * 1e3)
        gc.enable()
        times.sort()
        row = {"side": "pytorch", "variant": args.variant, "config": "decode_resize", "case": case,
               "ms_median": times[len(times) // 2], "ms_min": times[0], "ms_max": times[-1],
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "threads": 1,
               "repeats": args.repeats, "torch": torch.__version__}
        print(json.dumps(row) if args.json else f"{case:<14} {row['ms_median']:8.2f} ms", flush=True)


if __name__ == "__main__":
    main()
