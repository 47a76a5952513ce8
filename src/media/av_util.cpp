#include "media/av_util.h"

extern "C" {
#include <libavutil/display.h>
}

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <mutex>

#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"

namespace v2m::media::detail {

void OutputCloser::operator()(AVFormatContext* p) const {
  if (!p) return;
  if (p->oformat && !(p->oformat->flags & AVFMT_NOFILE) && p->pb) avio_closep(&p->pb);
  avformat_free_context(p);
}

FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  if (!f) throw Error("out of memory: av_frame_alloc");
  return f;
}

PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  if (!p) throw Error("out of memory: av_packet_alloc");
  return p;
}

std::string av_error(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

namespace {

void av_log_to_spdlog(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_VERBOSE) return;  // skip libav's debug chatter before formatting it
  // libav may log one line in several calls; print_prefix carries that state per thread.
  thread_local int print_prefix = 1;
  char line[1024];
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
  size_t n = std::strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  if (n > 0) spdlog::debug("libav: {}", line);
}

}  // namespace

void init_av_logging() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(av_log_to_spdlog); });
}

InputPtr open_input(const std::string& path, const std::string& what) {
  init_av_logging();
  require_regular_file(path, what);
  // "file:" + a protocol whitelist: a path must never be read as a URL or make a playlist
  // demuxer open network resources.
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", "file", 0);
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, ("file:" + path).c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (err < 0) {
    std::string why = err == AVERROR_INVALIDDATA ? "not a media file, or truncated" : av_error(err);
    throw Error(describe(what, path, why));
  }
  InputPtr fmt(raw);
  // The tty demuxer claims any .txt/.nfo file as "ANSI art video"; no user means that.
  if (std::strcmp(fmt->iformat->name, "tty") == 0) throw Error(describe(what, path, "not a media file"));
  err = avformat_find_stream_info(fmt.get(), nullptr);
  if (err < 0) throw Error(describe(what, path, "cannot read stream info, truncated? (" + av_error(err) + ")"));
  if (fmt->nb_streams == 0) throw Error(describe(what, path, "not a media file (no streams)"));
  return fmt;
}

int best_stream(AVFormatContext* fmt, AVMediaType type) {
  int idx = av_find_best_stream(fmt, type, -1, -1, nullptr, 0);
  if (idx >= 0 && type == AVMEDIA_TYPE_VIDEO && (fmt->streams[idx]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
    // av_find_best_stream prefers real video, so an attached picture means there is none.
    return -1;
  }
  return idx >= 0 ? idx : -1;
}

int find_stream(AVFormatContext* fmt, AVMediaType type, const std::string& path, const std::string& what) {
  int idx = best_stream(fmt, type);
  if (idx < 0) {
    const char* name = av_get_media_type_string(type);
    throw Error(describe(what, path, std::string("no ") + (name ? name : "such") + " stream"));
  }
  return idx;
}

CodecCtxPtr open_decoder(AVStream* st, const std::string& path, const std::string& what, int threads) {
  const AVCodecParameters* par = st->codecpar;
  if (par->codec_type == AVMEDIA_TYPE_VIDEO && (par->width != 0 || par->height != 0))
    check_frame_size(par->width, par->height, path, what);
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (!codec) throw Error(describe(what, path, std::string("no decoder for codec ") + avcodec_get_name(par->codec_id)));
  CodecCtxPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) throw Error("out of memory: avcodec_alloc_context3");
  int err = avcodec_parameters_to_context(ctx.get(), par);
  if (err < 0) throw Error(describe(what, path, "bad codec parameters (" + av_error(err) + ")"));
  ctx->pkt_timebase = st->time_base;
  ctx->thread_count = threads;
  // The decoder refuses frames bigger than we would accept anyway, before allocating them.
  ctx->max_pixels = kMaxFramePixels;
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) throw Error(describe(what, path, std::string("cannot open ") + codec->name + " decoder (" + av_error(err) + ")"));
  return ctx;
}

int stream_rotation(const AVStream* st) {
  const int32_t* m = nullptr;
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
  const AVPacketSideData* sd = av_packet_side_data_get(st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data,
                                                       AV_PKT_DATA_DISPLAYMATRIX);
  if (sd && sd->size >= 9 * sizeof(int32_t)) m = reinterpret_cast<const int32_t*>(sd->data);
#else
  size_t size = 0;
  const uint8_t* sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (sd && size >= 9 * sizeof(int32_t)) m = reinterpret_cast<const int32_t*>(sd);
#endif
  if (!m) return 0;
  // av_display_rotation_get is counter-clockwise; players (ffmpeg's autorotate, OpenCV's
  // CAP_PROP_ORIENTATION_META) turn clockwise by its negation.
  const double ccw = av_display_rotation_get(m);
  if (std::isnan(ccw)) return 0;
  long cw = std::lround(-ccw);
  cw = ((cw % 360) + 360) % 360;
  return static_cast<int>(((cw + 45) / 90 * 90) % 360);
}

double origin_seconds(const AVFormatContext* fmt) {
  return fmt->start_time == AV_NOPTS_VALUE ? 0.0 : static_cast<double>(fmt->start_time) / AV_TIME_BASE;
}

double ts_seconds(int64_t ts, AVRational tb, double origin) { return static_cast<double>(ts) * av_q2d(tb) - origin; }

bool seek_before(AVFormatContext* fmt, int stream, double seconds) {
  const AVStream* st = fmt->streams[stream];
  const double abs_s = seconds + origin_seconds(fmt);
  // Clamped: a huge start (or a tiny time base) must not overflow the int64 conversion.
  const double pos = std::floor(abs_s / av_q2d(st->time_base));
  if (!std::isfinite(pos) || std::fabs(pos) > 9.0e18) return false;
  const int64_t ts = static_cast<int64_t>(pos);
  return av_seek_frame(fmt, stream, ts, AVSEEK_FLAG_BACKWARD) >= 0;
}

DecodeStats decode_stream(AVFormatContext* fmt, AVCodecContext* dec, int stream,
                          const std::function<bool(AVFrame*)>& on_frame) {
  DecodeStats s;
  PacketPtr pkt = make_packet();
  FramePtr frame = make_frame();
  // Returns false when on_frame asked to stop.
  auto drain = [&]() -> bool {
    for (;;) {
      int r = avcodec_receive_frame(dec, frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return true;
      if (r < 0) {  // a frame the decoder could not reconstruct: skip it
        ++s.failed_packets;
        return true;
      }
      ++s.frames;
      const bool go_on = on_frame(frame.get());
      av_frame_unref(frame.get());
      if (!go_on) return false;
    }
  };
  for (;;) {
    int r = av_read_frame(fmt, pkt.get());
    if (r < 0) {
      if (r != AVERROR_EOF) {
        s.read_error = true;
        spdlog::debug("media: read stopped: {}", av_error(r));
      }
      break;
    }
    if (pkt->stream_index != stream) {
      av_packet_unref(pkt.get());
      continue;
    }
    ++s.packets;
    for (;;) {
      r = avcodec_send_packet(dec, pkt.get());
      if (r != AVERROR(EAGAIN)) break;
      if (!drain()) {  // EAGAIN: output must be read before more input is accepted
        av_packet_unref(pkt.get());
        return s;
      }
    }
    av_packet_unref(pkt.get());
    if (r < 0) ++s.failed_packets;
    if (!drain()) return s;
  }
  avcodec_send_packet(dec, nullptr);
  drain();
  return s;
}

void encode_and_write(AVCodecContext* enc, const AVFrame* frame, AVFormatContext* oc, AVStream* st,
                      const std::string& what, const std::string& path) {
  int r = avcodec_send_frame(enc, frame);
  if (r < 0) throw Error(describe(what, path, std::string(enc->codec->name) + " encoder: " + av_error(r)));
  PacketPtr pkt = make_packet();
  for (;;) {
    r = avcodec_receive_packet(enc, pkt.get());
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    if (r < 0) throw Error(describe(what, path, std::string(enc->codec->name) + " encoder: " + av_error(r)));
    av_packet_rescale_ts(pkt.get(), enc->time_base, st->time_base);
    pkt->stream_index = st->index;
    r = av_interleaved_write_frame(oc, pkt.get());
    if (r < 0) throw Error(describe(what, path, "write failed: " + av_error(r)));
  }
}

void copy_display_matrix(const AVStream* in, AVStream* out) {
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
  (void)in;
  (void)out;  // side data lives in codecpar now and travels with avcodec_parameters_copy
#else
  size_t size = 0;
  const uint8_t* sd = av_stream_get_side_data(in, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (!sd || size < 9 * sizeof(int32_t)) return;
  uint8_t* dst = av_stream_new_side_data(out, AV_PKT_DATA_DISPLAYMATRIX, size);
  if (dst) std::memcpy(dst, sd, size);
#endif
}

void check_frame_size(int w, int h, const std::string& path, const std::string& what) {
  if (w <= 0 || h <= 0 || w > kMaxFrameSide || h > kMaxFrameSide) {
    throw Error(describe(what, path,
                         "frame size " + std::to_string(w) + "x" + std::to_string(h) + " is outside 1.." +
                             std::to_string(kMaxFrameSide)));
  }
  if (static_cast<int64_t>(w) * h > kMaxFramePixels)
    throw Error(describe(what, path,
                         "frame size " + std::to_string(w) + "x" + std::to_string(h) + " is over the limit of " +
                             std::to_string(kMaxFramePixels / 1000000) + " Mpx"));
}

}  // namespace v2m::media::detail
