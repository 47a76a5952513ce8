"""CLIP parity fixtures for tests/nn/test_clip_vision.cpp (ClipVision.MatchesTransformersFixtures).

Writes into `outdir` (tests/fixtures/hf/clip when run through make_hf_fixtures.py):

  vision_with_projection/{config.json, model.safetensors}   tiny CLIPVisionModelWithProjection
                                                            (hidden_act quick_gelu), save_pretrained
  clip_model/{config.json, model.safetensors}               tiny CLIPModel (vision hidden_act gelu;
                                                            the text tower is saved and ignored by v2m)
  io.safetensors
      pixel_values [B, 3, S, S] float32
      vision_with_projection.image_embeds [B, P], vision_with_projection.pooled [B, D]
      clip_model.image_embeds [B, P]   (CLIPModel.get_image_features: projected, not normalised)
      clip_model.pooled [B, D]         (vision_model pooler_output)
      image_uint8 [H, W, 3] uint8      a smooth RGB test image
      processed [1, 3, S, S] float32   CLIPImageProcessor(image_uint8) with shortest_edge = crop = S

Needs torch, transformers, safetensors and Pillow; seed 0 throughout, CPU, fp32. About 0.3 MB.
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

B = 2
S, PATCH = 32, 8               # image size, patch size -> 17 tokens
D, FFN, LAYERS, HEADS, P = 32, 64, 2, 4, 16


def _vision_kwargs(act):
    return dict(hidden_size=D, intermediate_size=FFN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                image_size=S, patch_size=PATCH, num_channels=3, hidden_act=act, layer_norm_eps=1e-5,
                attention_dropout=0.0, projection_dim=P)


def _eager(config):
    """Asks for the eager attention path (same math; keeps the reference independent of SDPA)."""
    for c in [config] + [getattr(config, n) for n in ("vision_config", "text_config") if hasattr(config, n)]:
        try:
            c._attn_implementation = "eager"
        except Exception:  # older transformers: no attention switch
            pass
    return config


def _randomize(model, seed):
    """Makes LayerNorms non-trivial and the class/position embeddings larger than HF's init, so a
    swapped weight/bias, a missing LayerNorm or a transposed position table cannot pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            elif "class_embedding" in name or "position_embedding" in name:
                p.copy_(0.5 * noise)


def _smooth_image(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    gch = 127.5 + 90 * np.cos((x + y) / 9.0)
    b = 40 + 180 * (x / (w - 1)) * (y / (h - 1))
    return np.clip(np.stack([r, gch, b], -1).round(), 0, 255).astype(np.uint8)


def make(outdir):
    from PIL import Image
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    torch.manual_seed(0)
    io = {}
    pixel_values = torch.randn(B, 3, S, S)
    io["pixel_values"] = pixel_values

    # CLIPVisionModelWithProjection: vision_model.* + visual_projection.weight
    vcfg = _eager(CLIPVisionConfig(**_vision_kwargs("quick_gelu")))
    vm = CLIPVisionModelWithProjection(vcfg).eval()
    _randomize(vm, 1)
    with torch.no_grad():
        out = vm(pixel_values=pixel_values)
        io["vision_with_projection.image_embeds"] = out.image_embeds.contiguous()
        io["vision_with_projection.pooled"] = vm.vision_model(pixel_values=pixel_values).pooler_output.contiguous()
    vm.save_pretrained(os.path.join(outdir, "vision_with_projection"), safe_serialization=True)

    # Full CLIPModel: v2m reads vision_config + the top-level projection_dim.
    text = dict(vocab_size=64, hidden_size=D, intermediate_size=FFN, num_hidden_layers=1, num_attention_heads=HEADS,
                max_position_embeddings=16, projection_dim=P)
    ccfg = _eager(CLIPConfig(text_config=text, vision_config=_vision_kwargs("gelu"), projection_dim=P))
    cm = CLIPModel(ccfg).eval()
    _randomize(cm, 2)
    with torch.no_grad():
        io["clip_model.image_embeds"] = cm.get_image_features(pixel_values=pixel_values).contiguous()
        io["clip_model.pooled"] = cm.vision_model(pixel_values=pixel_values).pooler_output.contiguous()
    cm.save_pretrained(os.path.join(outdir, "clip_model"), safe_serialization=True)

    # CLIPImageProcessor (PIL bicubic short-side resize, centre crop, rescale, CLIP mean/std) on a
    # 40 x 56 image: a downscale, so the antialiasing matters.
    img = _smooth_image(40, 56)
    proc = CLIPImageProcessor(size={"shortest_edge": S}, crop_size={"height": S, "width": S})
    processed = proc(images=Image.fromarray(img), return_tensors="pt")["pixel_values"]
    io["image_uint8"] = torch.from_numpy(img).contiguous()
    io["processed"] = processed.float().contiguous()

    save_file({k: v.detach().cpu().contiguous() for k, v in io.items()}, os.path.join(outdir, "io.safetensors"))
