"""Minimal safetensors writer shared by the weight-conversion scripts (no safetensors package
needed): F32 / I64 tensors in sorted name order, 8-byte aligned header, written to a temporary
file and renamed so a failed conversion never leaves a partial file."""
import json
import os
import struct


def save_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (sorted names), written to a temp file then renamed."""
    import torch

    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.is_floating_point():
            t, dtype = t.float(), "F32"
        else:
            t, dtype = t.to(torch.int64), "I64"
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
