#!/usr/bin/env python3
"""Converts the public PyTorch VGGish weights into the safetensors file `v2m eval` reads for FAD.

Source: harritaylor/torchvggish release asset vggish-10086976.pth (a plain state dict):
    https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth

    python3 scripts/convert_vggish.py vggish-10086976.pth -o models/vggish.safetensors

Tensor names are kept as in torchvggish (features.{0,3,6,8,11,13}.*, embeddings.{0,2,4}.*),
stored as float32. The PCA post-processor (vggish_pca_params-970ea276.pth) is not used:
FAD is computed on the raw 128-d embedding. Needs Python with torch (numpy comes with it).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_safetensors  # noqa: E402

EXPECTED = {
    "features.0.weight": (64, 1, 3, 3), "features.3.weight": (128, 64, 3, 3),
    "features.6.weight": (256, 128, 3, 3), "features.8.weight": (256, 256, 3, 3),
    "features.11.weight": (512, 256, 3, 3), "features.13.weight": (512, 512, 3, 3),
    "embeddings.0.weight": (4096, 12288), "embeddings.2.weight": (4096, 4096),
    "embeddings.4.weight": (128, 4096),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", help="vggish-10086976.pth")
    ap.add_argument("-o", "--output", default="models/vggish.safetensors")
    args = ap.parse_args()
    import torch

    sd = torch.load(args.pth, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    out = {}
    for name, t in sd.items():
        if name.startswith("pproc."):  # PCA params when a whole VGGish module was saved
            continue
        if not (name.startswith("features.") or name.startswith("embeddings.")):
            sys.exit(f"{args.pth}: unexpected tensor {name!r} (not a torchvggish VGG state dict?)")
        out[name] = t
    for name, shape in EXPECTED.items():
        if name not in out:
            sys.exit(f"{args.pth}: missing tensor {name!r}")
        if tuple(out[name].shape) != shape:
            sys.exit(f"{args.pth}: {name} has shape {tuple(out[name].shape)}, expected {shape}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_safetensors(args.output, out, {"source": os.path.basename(args.pth), "model": "vggish"})
    print(args.output)


if __name__ == "__main__":
    main()
