#!/usr/bin/env python3
"""Writes the transformers parity fixtures under tests/fixtures/hf/.

Needs Python with torch + transformers (the CUDA machine has them; the build machines
do not). Each part lives in scripts/hf_fixtures/<part>.py with a make(outdir) function
that builds a tiny random-init model with a fixed seed, saves it with save_pretrained
(safetensors) and writes inputs + reference outputs as safetensors.

    python3 scripts/make_hf_fixtures.py [--out tests/fixtures/hf] [--only clip,encodec,musicgen]
"""
import argparse
import importlib
import os
import sys

PARTS = ["clip", "encodec", "musicgen"]


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "hf"))
    ap.add_argument("--only", default=",".join(PARTS))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(root, "scripts"))
    for part in args.only.split(","):
        mod = importlib.import_module("hf_fixtures." + part)
        out = os.path.join(args.out, part)
        os.makedirs(out, exist_ok=True)
        mod.make(out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
