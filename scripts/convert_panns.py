#!/usr/bin/env python3
"""Converts the public PANNs CNN14 AudioSet tagger into the safetensors file `v2m eval` reads for KLD.

Source: Cnn14_mAP=0.431.pth from Kong et al., "PANNs" (zenodo record 3987831):
    https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth

    python3 scripts/convert_panns.py "Cnn14_mAP=0.431.pth" -o models/panns_cnn14.safetensors

The checkpoint is {"model": state_dict, ...}. Names are kept (bn0.*, conv_block1..6.*, fc1.*,
fc_audioset.*); the fixed frontend tensors (spectrogram_extractor.*, logmel_extractor.melW)
are dropped because v2m recomputes the STFT and the librosa mel bank. Floating tensors are
stored as float32, BatchNorm's num_batches_tracked as int64. Needs Python with torch.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", help="Cnn14_mAP=0.431.pth")
    ap.add_argument("-o", "--output", default="models/panns_cnn14.safetensors")
    args = ap.parse_args()
    import torch

    ck = torch.load(args.pth, map_location="cpu")
    sd = ck["model"] if isinstance(ck, dict) and "model" in ck else ck
    out = {}
    for name, t in sd.items():
        if name.startswith("spectrogram_extractor.") or name.startswith("logmel_extractor."):
            continue
        ok = name.startswith(("bn0.", "conv_block", "fc1.", "fc_audioset."))
        if not ok:
            sys.exit(f"{args.pth}: unexpected tensor {name!r} (not a PANNs Cnn14 checkpoint?)")
        out[name] = t
    for name, shape in {"bn0.weight": (64,), "conv_block1.conv1.weight": (64, 1, 3, 3),
                        "conv_block6.conv2.weight": (2048, 2048, 3, 3), "fc1.weight": (2048, 2048),
                        "fc_audioset.weight": (527, 2048)}.items():
        if name not in out:
            sys.exit(f"{args.pth}: missing tensor {name!r}")
        if tuple(out[name].shape) != shape:
            sys.exit(f"{args.pth}: {name} has shape {tuple(out[name].shape)}, expected {shape}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_safetensors(args.output, out, {"source": os.path.basename(args.pth), "model": "panns_cnn14"})
    print(args.output)


if __name__ == "__main__":
    main()
