// mux(): the input's video stream copied packet for packet + new AAC audio, interleaved.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "media/audio_util.h"
#include "media/av_util.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"

namespace v2m::media {

using namespace detail;

namespace {

bool aac_supports_rate(const AVCodec* aac, int rate) {
  if (!aac->supported_samplerates) return true;
  for (const int* r = aac->supported_samplerates; *r; ++r)
    if (*r == rate) return true;
  return false;
}

}  // namespace

void mux(const std::string& video_in, const Audio& audio_in, const std::string& out, int64_t audio_bit_rate) {
  const std::string what = "cannot mux";
  init_av_logging();
  check_audio_buffer(audio_in, what, out);
  if (audio_in.channels > 8) throw Error(describe(what, out, "AAC holds at most 8 channels"));
  if (audio_in.frames() == 0) throw Error(describe(what, out, "audio is empty"));
  // The container comes from the final name: the temp file's name has no usable extension.
  const AVOutputFormat* ofmt = av_guess_format(nullptr, out.c_str(), nullptr);
  const std::string oname = ofmt ? ofmt->name : "";
  if (oname != "mp4" && oname != "mov" && oname != "matroska")
    throw Error(describe(what, out, "unsupported container (use .mp4, .mov or .mkv)"));

  InputPtr in = open_input(video_in, what);
  const int vs = find_stream(in.get(), AVMEDIA_TYPE_VIDEO, video_in, what);
  AVStream* ist = in->streams[vs];
  if (avformat_query_codec(ofmt, ist->codecpar->codec_id, FF_COMPLIANCE_NORMAL) != 1)
    throw Error(describe(what, out, std::string("video codec ") + avcodec_get_name(ist->codecpar->codec_id) +
                                        " cannot be stored in ." + (oname == "matroska" ? "mkv" : oname) +
                                        " (try .mkv)"));
  const AVCodec* aac = avcodec_find_encoder_by_name("aac");
  if (!aac) throw Error(describe(what, out, "libavcodec has no native aac encoder"));
  // AAC has a fixed set of rates (32/44.1/48 kHz, ...); anything else goes to 48 kHz.
  Audio resampled;
  const Audio* audio = &audio_in;
  if (!aac_supports_rate(aac, audio_in.sample_rate)) {
    resampled = resample(audio_in, 48000, audio_in.channels);
    audio = &resampled;
  }
  const int sr = audio->sample_rate;
  // Video timestamps move to the file origin, where audio sample 0 sits (as the decoders'
  // time line, and as ffmpeg does by default when remuxing).
  const int64_t shift = in->start_time == AV_NOPTS_VALUE ? 0 : av_rescale_q(in->start_time, AV_TIME_BASE_Q, ist->time_base);
  const AVRational vtb = ist->time_base;
  const double nominal_period =
      ist->avg_frame_rate.num > 0 && ist->avg_frame_rate.den > 0 ? 1.0 / av_q2d(ist->avg_frame_rate) : 0.0;

  atomic_write(out, [&](const std::string& tmp) {
    AVFormatContext* raw = nullptr;
    int r = avformat_alloc_output_context2(&raw, ofmt, nullptr, tmp.c_str());
    if (r < 0) throw Error(describe(what, out, av_error(r)));
    OutputPtr oc(raw);

    AVStream* vst = avformat_new_stream(oc.get(), nullptr);
    if (!vst) throw Error("out of memory: avformat_new_stream");
    avcodec_parameters_copy(vst->codecpar, ist->codecpar);
    vst->codecpar->codec_tag = 0;  // let the output container pick its own tag
    vst->time_base = ist->time_base;
    vst->avg_frame_rate = ist->avg_frame_rate;
    copy_display_matrix(ist, vst);

    CodecCtxPtr enc(avcodec_alloc_context3(aac));
    if (!enc) throw Error("out of memory: avcodec_alloc_context3");
    enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    enc->sample_rate = sr;
    av_channel_layout_default(&enc->ch_layout, audio->channels);
    enc->bit_rate = audio_bit_rate;
    enc->time_base = AVRational{1, sr};
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    r = avcodec_open2(enc.get(), aac, nullptr);
    if (r < 0) throw Error(describe(what, out, "cannot open aac encoder: " + av_error(r)));
    AVStream* ast = avformat_new_stream(oc.get(), nullptr);
    if (!ast) throw Error("out of memory: avformat_new_stream");
    avcodec_parameters_from_context(ast->codecpar, enc.get());
    ast->time_base = enc->time_base;

    r = avio_open(&oc->pb, ("file:" + tmp).c_str(), AVIO_FLAG_WRITE);
    if (r < 0) throw Error(describe(what, out, av_error(r)));
    AVDictionary* mopts = nullptr;
    if (oname != "matroska") av_dict_set(&mopts, "movflags", "+faststart", 0);  // playable while downloading
    r = avformat_write_header(oc.get(), &mopts);
    av_dict_free(&mopts);
    if (r < 0) throw Error(describe(what, out, av_error(r)));

    const int fs = enc->frame_size > 0 ? enc->frame_size : 1024;
    FramePtr af = make_frame();
    af->format = AV_SAMPLE_FMT_FLTP;
    av_channel_layout_copy(&af->ch_layout, &enc->ch_layout);
    af->sample_rate = sr;
    af->nb_samples = fs;
    r = av_frame_get_buffer(af.get(), 0);
    if (r < 0) throw Error(describe(what, out, av_error(r)));
    const int64_t total = audio->frames();
    int64_t apos = 0;
    auto encode_frame = [&](int len) {
      av_frame_make_writable(af.get());
      for (int c = 0; c < audio->channels; ++c)
        std::memcpy(af->data[c], audio->channel(c) + apos, static_cast<size_t>(len) * sizeof(float));
      af->nb_samples = len;
      af->pts = apos;
      encode_and_write(enc.get(), af.get(), oc.get(), ast, what, out);
      apos += len;
    };

    PacketPtr pkt = make_packet();
    double video_end = 0;
    int64_t packets = 0;
    for (;;) {
      r = av_read_frame(in.get(), pkt.get());
      if (r < 0) {
        if (r != AVERROR_EOF) spdlog::warn("mux: {}: input ends early ({}); copying what was read", video_in, av_error(r));
        break;
      }
      if (pkt->stream_index != vs) {
        av_packet_unref(pkt.get());
        continue;
      }
      if (pkt->pts != AV_NOPTS_VALUE) pkt->pts -= shift;
      if (pkt->dts != AV_NOPTS_VALUE) pkt->dts -= shift;
      const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (ts != AV_NOPTS_VALUE) {
        const double dur = pkt->duration > 0 ? pkt->duration * av_q2d(vtb) : nominal_period;
        video_end = std::max(video_end, ts * av_q2d(vtb) + dur);
      }
      // Audio frames that end before this packet's decode time go first, so the file is
      // interleaved in time; they can never pass the (later known) end of the video.
      if (pkt->dts != AV_NOPTS_VALUE) {
        const int64_t until = static_cast<int64_t>(std::floor(pkt->dts * av_q2d(vtb) * sr));
        while (apos + fs <= std::min(until, total)) encode_frame(fs);
      }
      av_packet_rescale_ts(pkt.get(), ist->time_base, vst->time_base);
      pkt->stream_index = vst->index;
      pkt->pos = -1;
      r = av_interleaved_write_frame(oc.get(), pkt.get());
      if (r < 0) throw Error(describe(what, out, "write failed: " + av_error(r)));
      ++packets;
    }
    if (packets == 0) throw Error(describe(what, video_in, "no video packets"));
    // Trim the music to the video's length.
    const int64_t end = std::min(total, static_cast<int64_t>(std::llround(video_end * sr)));
    while (apos < end) encode_frame(static_cast<int>(std::min<int64_t>(fs, end - apos)));
    encode_and_write(enc.get(), nullptr, oc.get(), ast, what, out);
    r = av_write_trailer(oc.get());
    if (r < 0) throw Error(describe(what, out, av_error(r)));
    r = avio_closep(&oc->pb);
    if (r < 0) throw Error(describe(what, out, av_error(r)));
  });
}

}  // namespace v2m::media
