// FLAC through libavcodec, and the by-extension dispatcher used by the CLI.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "media/audio_util.h"
#include "media/av_util.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"

namespace v2m::media {

using namespace detail;

void write_flac(const std::string& path, const Audio& audio) {
  const std::string what = "cannot write flac";
  init_av_logging();
  check_audio_buffer(audio, what, path);
  if (audio.channels > 8) throw Error(describe(what, path, "FLAC holds at most 8 channels"));
  if (audio.sample_rate > 655350) throw Error(describe(what, path, "sample rate too high for FLAC"));
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_FLAC);
  if (!codec) throw Error(describe(what, path, "libavcodec has no FLAC encoder"));

  atomic_write(path, [&](const std::string& tmp) {
    // The format is named explicitly: the temp file's name has no .flac extension.
    AVFormatContext* raw = nullptr;
    int r = avformat_alloc_output_context2(&raw, nullptr, "flac", tmp.c_str());
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    OutputPtr oc(raw);
    CodecCtxPtr enc(avcodec_alloc_context3(codec));
    if (!enc) throw Error("out of memory: avcodec_alloc_context3");
    enc->sample_fmt = AV_SAMPLE_FMT_S16;
    enc->sample_rate = audio.sample_rate;
    av_channel_layout_default(&enc->ch_layout, audio.channels);
    enc->time_base = AVRational{1, audio.sample_rate};
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    r = avcodec_open2(enc.get(), codec, nullptr);
    if (r < 0) throw Error(describe(what, path, "cannot open FLAC encoder: " + av_error(r)));
    AVStream* st = avformat_new_stream(oc.get(), nullptr);
    if (!st) throw Error("out of memory: avformat_new_stream");
    avcodec_parameters_from_context(st->codecpar, enc.get());
    st->time_base = enc->time_base;
    r = avio_open(&oc->pb, ("file:" + tmp).c_str(), AVIO_FLAG_WRITE);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    r = avformat_write_header(oc.get(), nullptr);
    if (r < 0) throw Error(describe(what, path, av_error(r)));

    const int fs = enc->frame_size > 0 ? enc->frame_size : 4096;
    FramePtr frame = make_frame();
    frame->format = AV_SAMPLE_FMT_S16;
    av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
    frame->sample_rate = audio.sample_rate;
    frame->nb_samples = fs;
    r = av_frame_get_buffer(frame.get(), 0);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    const int64_t n = audio.frames();
    for (int64_t pos = 0; pos < n; pos += fs) {
      const int len = static_cast<int>(std::min<int64_t>(fs, n - pos));
      av_frame_make_writable(frame.get());
      auto* dst = reinterpret_cast<int16_t*>(frame->data[0]);  // S16 is interleaved
      for (int i = 0; i < len; ++i)
        for (int c = 0; c < audio.channels; ++c) dst[i * audio.channels + c] = to_pcm16(audio.channel(c)[pos + i]);
      frame->nb_samples = len;  // the encoder takes a short last frame
      frame->pts = pos;
      encode_and_write(enc.get(), frame.get(), oc.get(), st, what, path);
    }
    encode_and_write(enc.get(), nullptr, oc.get(), st, what, path);
    r = av_write_trailer(oc.get());
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    r = avio_closep(&oc->pb);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
  });
}

void write_audio(const std::string& path, const Audio& audio, WavFormat wav_format) {
  const auto dot = path.find_last_of('.');
  const auto slash = path.find_last_of('/');
  std::string ext = dot == std::string::npos || (slash != std::string::npos && dot < slash) ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "wav") return write_wav(path, audio, wav_format);
  if (ext == "flac") return write_flac(path, audio);
  throw Error(describe("cannot write audio", path, "unsupported format '" + ext + "' (use .wav or .flac)"));
}

}  // namespace v2m::media
