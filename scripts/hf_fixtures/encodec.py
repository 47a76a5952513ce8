"""EnCodec parity fixtures for tests/nn/test_encodec.cpp (Encodec.MatchesTransformersFixtures).

Writes into `outdir` (tests/fixtures/hf/encodec when run through make_hf_fixtures.py):

  model/{config.json, model.safetensors}   tiny EncodecModel of the 32 kHz family (ratios 8,5,4,4 ->
                                           hop 640, non-causal, reflect padding, no conv shortcut,
                                           weight norm, 2 LSTM layers, target_bandwidths [2.2] -> 4
                                           codebooks) with num_filters 4, save_pretrained
  io.safetensors
      input_values [B, 1, N] float32   N = 10 frames * 640 + 123 (not a multiple of the hop)
      embeddings [B, hidden, T]        model.encoder(input_values)
      audio_codes [B, K, T] int64      model.encode(input_values, bandwidth=2.2).audio_codes[0]
      audio_values [B, 1, T * 640]     model.decode(audio_codes[None], [None]).audio_values

Needs torch, transformers and safetensors; seed 0 throughout, CPU, fp32. About 0.5 MB.
"""
import os

import torch
from safetensors.torch import save_file

B, FRAMES, EXTRA = 2, 10, 123
HIDDEN, CODEBOOK = 16, 64


def _randomize(model, seed):
    """transformers leaves the codebooks at zero until weights are loaded: draw them (scaled to
    the encoder's output so every codeword is in play), and perturb biases and weight-norm
    magnitudes so a dropped bias or an unfolded g cannot pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("weight_g") or name.endswith("original0"):
                p.mul_(1.0 + 0.2 * noise).abs_()
            elif name.endswith("bias") and "lstm" not in name:
                p.copy_(0.05 * noise)


def make(outdir):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(
        sampling_rate=32000, audio_channels=1, normalize=False, chunk_length_s=None, overlap=None,
        hidden_size=HIDDEN, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4],
        norm_type="weight_norm", kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
        dilation_growth_rate=2, use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2,
        trim_right_ratio=1.0, codebook_size=CODEBOOK, codebook_dim=HIDDEN, target_bandwidths=[2.2],
        use_conv_shortcut=False)
    assert config.num_quantizers == 4, config.num_quantizers
    model = EncodecModel(config).eval()
    _randomize(model, 1)

    hop = 8 * 5 * 4 * 4
    t = torch.arange(FRAMES * hop + EXTRA, dtype=torch.float32) / 32000.0
    tone = 0.3 * torch.sin(2 * torch.pi * 440.0 * t) + 0.2 * torch.sin(2 * torch.pi * 97.0 * t)
    input_values = (tone.expand(B, 1, -1) + 0.05 * torch.randn(B, 1, t.numel())).contiguous()

    with torch.no_grad():
        emb = model.encoder(input_values)  # [B, D, T]
        # Codebook k: random codewords at the scale of what stage k quantizes (halving per stage).
        std = emb.std().item()
        for k, layer in enumerate(model.quantizer.layers):
            layer.codebook.embed.copy_(torch.randn(CODEBOOK, HIDDEN) * std * 0.5 ** k)
        enc = model.encode(input_values, bandwidth=2.2)
        codes = enc.audio_codes  # [chunks = 1, B, K, T]
        assert codes.shape[0] == 1 and codes.shape[2] == 4, codes.shape
        audio = model.decode(codes, [None]).audio_values

    model.save_pretrained(os.path.join(outdir, "model"), safe_serialization=True)
    io = {
        "input_values": input_values,
        "embeddings": emb,
        "audio_codes": codes[0].long(),
        "audio_values": audio,
    }
    save_file({k: v.detach().cpu().contiguous() for k, v in io.items()}, os.path.join(outdir, "io.safetensors"))
