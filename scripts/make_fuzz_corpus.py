#!/usr/bin/env python3
"""Writes the seed corpora for the libFuzzer targets in tests/fuzz (scripts/fuzz.sh calls it).

  make_fuzz_corpus.py OUT_DIR   ->  OUT_DIR/{safetensors,config,manifest,media}/seed_*

Seeds are small valid inputs plus a few near-misses, so the fuzzer starts inside each format
instead of spending its time discovering the first bytes. Media seeds need the ffmpeg CLI;
without it that corpus starts empty (the fuzzer still runs, just less deep).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] -> a safetensors file as bytes."""
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header).encode()
    while pad and (8 + len(h)) % 8:
        h += b" "
    return struct.pack("<Q", len(h)) + h + blob


def safetensors_seeds(d):
    f32 = struct.pack("<6f", 0.5, -1.0, 2.0, 0.0, 3.25, -7.5)
    write(d, "seed_one_f32", safetensors([("w", "F32", [2, 3], f32)]))
    write(d, "seed_mixed", safetensors([
        ("a.weight", "F16", [2, 2], b"\x00\x3c" * 4), ("a.bias", "BF16", [2], b"\x80\x3f" * 2),
        ("idx", "I64", [1], struct.pack("<q", 42)), ("mask", "BOOL", [3], b"\x01\x00\x01"),
        ("scalar", "F64", [], struct.pack("<d", 1.5)), ("empty", "U8", [0], b""),
    ], metadata={"format": "pt", "note": "seed"}))
    write(d, "seed_no_pad", safetensors([("x", "I32", [1], struct.pack("<i", 7))], pad=False))
    write(d, "seed_empty_header", struct.pack("<Q", 2) + b"{}")
    good = safetensors([("w", "F32", [2, 3], f32)])
    write(d, "seed_truncated", good[:-5])
    write(d, "seed_huge_hlen", struct.pack("<Q", 1 << 63) + good[8:])
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}).encode()
    write(d, "seed_overlap", struct.pack("<Q", len(hdr)) + hdr + b"\x00" * 8)


def config_seeds(d, root):
    run = """name: seed
model: model/tiny.yaml
out_dir: runs/seed
data:
  manifest: data/manifest.jsonl
  root: data
  cache_dir: cache
  allow_absolute_paths: false
train:
  steps: 10
  batch_size: 4
  grad_accum: 2
  lr: 3.0e-4
  device: cpu
  bf16: false
eval:
  metrics: [fad, chroma]
  limit: 2
"""
    write(d, "seed_run", run)
    write(d, "seed_run_override", run + "\0train.lr=0.5")
    write(d, "seed_flow", "{name: x, model: m.yaml, train: {steps: 5, seed: 3}, eval: {metrics: []}}")
    write(d, "seed_anchors", "base: &b {steps: 1}\ntrain: *b\nname: [1, 2]\n")
    write(d, "seed_bad_type", "train:\n  steps: many\n")
    write(d, "seed_unknown", "trian: {}\n")
    write(d, "seed_override_only", "\0data.root=/x")
    cdir = os.path.join(root, "configs", "model")
    for name in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        if name.endswith(".yaml"):
            shutil.copy(os.path.join(cdir, name), os.path.join(d, "seed_model_" + name))


def manifest_seeds(d):
    lines = [
        {"id": "a", "video": "clips/a.mp4", "start": 0.0, "duration": 10.0, "split": "train"},
        {"id": "b", "video": "clips/b.mkv", "audio": "audio/b.wav", "duration": 5, "split": "val",
         "labels": {"tempo": 120, "key": "C"}},
        {"id": "c", "video": "c.mp4", "split": "test"},
    ]
    write(d, "seed_valid", "".join(json.dumps(l) + "\n" for l in lines))
    write(d, "seed_blank_lines", "\n  \n" + json.dumps(lines[0]) + "\r\n\n")
    write(d, "seed_escape", json.dumps({"id": "x", "video": "../x.mp4", "split": "train"}) + "\n")
    write(d, "seed_absolute", json.dumps({"id": "x", "video": "/etc/passwd", "split": "train"}) + "\n")
    write(d, "seed_dup", json.dumps(lines[0]) + "\n" + json.dumps(lines[0]) + "\n")
    write(d, "seed_bad", '{"id": 1, "video": "a", "split": "dev", "duration": -1}\n{not json\n')


def media_seeds(d):
    ffmpeg = shutil.which("ffmpeg")
    os.makedirs(d, exist_ok=True)
    if not ffmpeg:
        print("make_fuzz_corpus: no ffmpeg CLI, media corpus starts empty", file=sys.stderr)
        return
    # Tiny clips in the containers/codecs the decoders meet most; few KB each.
    v = ["-f", "lavfi", "-i", "testsrc=size=32x24:rate=5:duration=1"]
    a = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=1"]
    specs = {
        "seed_mpeg4.mp4": v + a + ["-c:v", "mpeg4", "-c:a", "aac", "-b:a", "16k"],
        "seed_mjpeg.mkv": v + a + ["-c:v", "mjpeg", "-c:a", "pcm_s16le"],
        "seed_ffv1.mkv": v + ["-c:v", "ffv1"],
        "seed_pcm.wav": a + ["-c:a", "pcm_s16le"],
        "seed_flac.flac": a + ["-c:a", "flac"],
        "seed_mpeg4.avi": v + ["-c:v", "mpeg4"],
        "seed_rawvideo.nut": ["-f", "lavfi", "-i", "testsrc=size=8x8:rate=2:duration=1", "-c:v", "rawvideo"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in specs.items():
            out = os.path.join(tmp, name)
            r = subprocess.run([ffmpeg, "-v", "error", "-y"] + args + ["-shortest", out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode == 0:
                shutil.copy(out, os.path.join(d, name))
            else:
                print(f"make_fuzz_corpus: skipped {name}: {r.stderr.decode().strip()}", file=sys.stderr)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fuzz_corpus.py OUT_DIR")
    out = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    safetensors_seeds(os.path.join(out, "safetensors"))
    config_seeds(os.path.join(out, "config"), root)
    manifest_seeds(os.path.join(out, "manifest"))
    media_seeds(os.path.join(out, "media"))
    for t in ("safetensors", "config", "manifest", "media"):
        print(f"{t}: {len(os.listdir(os.path.join(out, t)))} seeds")


if __name__ == "__main__":
    main()
