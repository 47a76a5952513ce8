"""MusicGen parity fixtures for tests/nn/test_musicgen_decoder.cpp (MatchesTransformersFixtures).

Writes into `outdir` (tests/fixtures/hf/musicgen when run through make_hf_fixtures.py):

  causal_lm/{config.json, model.safetensors}   tiny MusicgenForCausalLM, save_pretrained
  causal_lm_io.safetensors
      codes [B, K, T] int64, encoder_hidden_states [B, S, D], encoder_attention_mask [B, S] int64,
      logits [B, K, T, V] (forward with the mask), greedy_codes [B, K, F] (generate, no CFG),
      greedy_cfg_codes [B, K, F] (generate with guidance_scale; the null condition is zero states
      with an all-zero mask, as MusicgenForConditionalGeneration builds it), guidance_scale []
  composite/{config.json, model.safetensors}   tiny MusicgenForConditionalGeneration (tiny T5 +
                                               tiny EnCodec + the decoder), save_pretrained
  composite_io.safetensors
      input_ids, attention_mask [B, S] int64, text_hidden_states [B, S, Dt] (T5 output before
      enc_to_dec_proj), decoder_codes [B, K, T], logits [B, K, T, V] (composite forward),
      greedy_cfg_codes [B, K, F], guidance_scale []

Needs torch, transformers and safetensors; seed 0 throughout, CPU, fp32.
"""
import os

import torch
from safetensors.torch import save_file

B, K, V, D = 2, 4, 16, 32  # batch, codebooks, vocab (codebook size), decoder width
T, S, FRAMES = 7, 5, 6     # teacher-forced length, memory tokens, generated frames
GUIDANCE = 3.0


def _decoder_config():
    from transformers import MusicgenDecoderConfig

    return MusicgenDecoderConfig(
        vocab_size=V, max_position_embeddings=64, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        hidden_size=D, num_codebooks=K, activation_function="gelu", dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, layerdrop=0.0, scale_embedding=False, audio_channels=1,
        pad_token_id=V, bos_token_id=V, decoder_start_token_id=V, tie_word_embeddings=False)


def _greedy(decoder, states, mask, guidance):
    """transformers' MusicgenForCausalLM.generate, greedy. states/mask: [B, S, D] / [B, S]."""
    if guidance is not None and guidance > 1:
        # the composite's _prepare_text_encoder_kwargs_for_generation: cond rows, then zeros
        states = torch.cat([states, torch.zeros_like(states)], 0)
        mask = torch.cat([mask, torch.zeros_like(mask)], 0)
    bos = torch.full((B * K, 1), V, dtype=torch.long)
    # The decoder attention mask must be given as [B, 1] ones: without it generate() derives one
    # from input_ids, and since BOS == pad it would mask the BOS column (and have B*K rows).
    out = decoder.generate(input_ids=bos, attention_mask=torch.ones(B, 1, dtype=torch.long),
                           encoder_hidden_states=states, encoder_attention_mask=mask,
                           do_sample=False, num_beams=1, max_new_tokens=FRAMES + K - 1, guidance_scale=guidance,
                           pad_token_id=V, bos_token_id=V, decoder_start_token_id=V)
    out = out.reshape(B, K, -1)
    assert out.shape[-1] == FRAMES, out.shape
    return out.long().contiguous()


def _eager(config):
    """Asks for the eager attention path (same math; keeps the reference independent of SDPA)."""
    for c in [config] + [getattr(config, n) for n in ("decoder", "text_encoder", "audio_encoder") if hasattr(config, n)]:
        try:
            c._attn_implementation = "eager"
        except Exception:  # older transformers: no attention switch
            pass
    return config


def _randomize(model, prefixes=("",)):
    """Re-draws the decoder weights at a larger scale than HF's init (std 0.02 gives logits of
    ~0.1 and near-ties under greedy decoding) and makes every LayerNorm non-trivial, so a
    swapped weight/bias or a missing LayerNorm cannot pass. The sinusoid table is left alone."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(prefixes) or "embed_positions" in name:
                continue
            noise = torch.randn(p.shape, generator=g)
            if "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            elif "embed_tokens" in name:
                p.copy_(noise)
            else:
                p.copy_(noise / max(p.shape[-1], 1) ** 0.5)


def _save_io(path, tensors):
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)


def _causal_lm(outdir):
    from transformers import MusicgenForCausalLM

    torch.manual_seed(0)
    model = MusicgenForCausalLM(_eager(_decoder_config())).eval()
    _randomize(model)
    model.save_pretrained(os.path.join(outdir, "causal_lm"), safe_serialization=True)

    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, V + 1, (B, K, T), generator=g)
    states = torch.randn(B, S, D, generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, -2:] = 0
    with torch.no_grad():
        logits = model(input_ids=codes.reshape(B * K, T), encoder_hidden_states=states,
                       encoder_attention_mask=mask).logits.reshape(B, K, T, V)
        greedy = _greedy(model, states, mask, None)
        greedy_cfg = _greedy(model, states, mask, GUIDANCE)
    _save_io(os.path.join(outdir, "causal_lm_io.safetensors"), {
        "codes": codes, "encoder_hidden_states": states, "encoder_attention_mask": mask, "logits": logits,
        "greedy_codes": greedy, "greedy_cfg_codes": greedy_cfg, "guidance_scale": torch.tensor(GUIDANCE)})


def _composite(outdir):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenForConditionalGeneration, T5Config

    text = T5Config(vocab_size=99, d_model=24, d_kv=8, d_ff=37, num_layers=2, num_heads=3,
                    relative_attention_num_buckets=8, dropout_rate=0.0)
    # 32 kHz, hop 640 -> 50 Hz frames; 2.2 kbps / (50 Hz * 10 bits) -> K = 4 quantizers, as
    # facebook/encodec_32khz (EncodecConfig.num_quantizers derives K from these three).
    audio = EncodecConfig(audio_channels=1, chunk_length_s=None, overlap=None, hidden_size=8, num_filters=2,
                          num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], codebook_size=V,
                          codebook_dim=8, num_lstm_layers=1, sampling_rate=32000,
                          target_bandwidths=[2.2], compress=2)
    assert audio.num_quantizers == K, audio.num_quantizers
    cfg = _eager(MusicgenConfig.from_sub_models_config(text, audio, _decoder_config()))
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(cfg).eval()
    assert model.enc_to_dec_proj.in_features == 24  # T5 width != decoder width -> projection exists
    _randomize(model, prefixes=("decoder.", "enc_to_dec_proj."))
    model.save_pretrained(os.path.join(outdir, "composite"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 99, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, -2:] = 0
    codes = torch.randint(0, V + 1, (B, K, T), generator=g)
    with torch.no_grad():
        text_states = model.text_encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        logits = model(input_ids=input_ids, attention_mask=mask,
                       decoder_input_ids=codes.reshape(B * K, T)).logits.reshape(B, K, T, V)
        # MusicgenForConditionalGeneration.forward's conditioning: proj, then times the mask
        projected = model.enc_to_dec_proj(text_states) * mask[..., None]
        greedy_cfg = _greedy(model.decoder, projected, mask, GUIDANCE)
    _save_io(os.path.join(outdir, "composite_io.safetensors"), {
        "input_ids": input_ids, "attention_mask": mask, "text_hidden_states": text_states,
        "decoder_codes": codes, "logits": logits, "greedy_cfg_codes": greedy_cfg,
        "guidance_scale": torch.tensor(GUIDANCE)})


def make(outdir):
    os.makedirs(outdir, exist_ok=True)
    torch.set_grad_enabled(False)
    _causal_lm(outdir)
    _composite(outdir)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(outdir) for f in fs)
    assert total < 2 * 1024 * 1024, f"musicgen fixtures are {total} bytes (limit 2 MB)"


if __name__ == "__main__":
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    make(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures", "hf", "musicgen"))
