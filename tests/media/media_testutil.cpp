#include "media/media_testutil.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>

namespace v2m::testutil {

namespace {

void check(int r, const std::string& what) {
  if (r < 0) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(r, buf, sizeof buf);
    throw std::runtime_error("media_testutil: " + what + ": " + buf);
  }
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

bool is_mp4_like(const AVOutputFormat* f) {
  const std::string n = f->name;
  return n == "mp4" || n == "mov" || n == "ipod";
}

struct Writer {
  AVFormatContext* oc = nullptr;
  ~Writer() {
    if (!oc) return;
    if (oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
  }
};

// Drains `enc` into stream `st`; packet durations come from `dur` (by pts) when given.
void drain(AVCodecContext* enc, AVFormatContext* oc, AVStream* st, const std::map<int64_t, int64_t>* dur) {
  AVPacket* pkt = av_packet_alloc();
  for (;;) {
    int r = avcodec_receive_packet(enc, pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
    check(r, "encode");
    if (dur) {
      auto it = dur->find(pkt->pts);
      if (it != dur->end()) pkt->duration = it->second;
    }
    av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
    pkt->stream_index = st->index;
    check(av_interleaved_write_frame(oc, pkt), "write");
  }
  av_packet_free(&pkt);
}

void set_rotation(AVStream* st, int cw_degrees) {
  int32_t m[9];
  // av_display_rotation_set takes clockwise degrees (av_display_rotation_get answers
  // counter-clockwise): a player turns the picture clockwise by cw_degrees.
  av_display_rotation_set(m, cw_degrees);
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
  AVPacketSideData* sd = av_packet_side_data_new(&st->codecpar->coded_side_data, &st->codecpar->nb_coded_side_data,
                                                 AV_PKT_DATA_DISPLAYMATRIX, sizeof m, 0);
  if (sd) std::memcpy(sd->data, m, sizeof m);
#else
  uint8_t* sd = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, sizeof m);
  if (sd) std::memcpy(sd, m, sizeof m);
#endif
}

}  // namespace

bool has_encoder(const std::string& name) { return avcodec_find_encoder_by_name(name.c_str()) != nullptr; }

std::string video_encoder() { return has_encoder("libx264") ? "libx264" : "mpeg4"; }

Square square_at(int index, int width, int height) {
  const int size = 12;
  const int rx = std::max(1, width - size - 8), ry = std::max(1, height - size - 8);
  return {4 + (2 * index) % rx, 4 + index % ry, size};
}

void paint_square(int index, double, cv::Mat& rgb) {
  rgb.setTo(cv::Scalar(16, 16, 16));
  const Square s = square_at(index, rgb.cols, rgb.rows);
  rgb(cv::Rect(s.x, s.y, s.size, s.size)).setTo(cv::Scalar(235, 235, 235));
}

int gray_level(int index) { return 20 + 20 * (index % 11); }

void paint_gray_level(int index, double, cv::Mat& rgb) {
  const int v = gray_level(index);
  rgb.setTo(cv::Scalar(v, v, v));
}

int index_from_gray(double mean) { return static_cast<int>(std::lround((mean - 20.0) / 20.0)); }

media::Audio sine(int sample_rate, int channels, double seconds, double hz, double amp) {
  media::Audio a;
  a.sample_rate = sample_rate;
  a.channels = channels;
  const int64_t n = std::llround(seconds * sample_rate);
  a.samples.resize(static_cast<size_t>(n) * channels);
  for (int c = 0; c < channels; ++c)
    for (int64_t i = 0; i < n; ++i)
      a.samples[c * n + i] = static_cast<float>(amp * std::sin(2 * M_PI * hz * static_cast<double>(i) / sample_rate));
  return a;
}

double zero_crossing_hz(const float* x, int64_t n, int sample_rate) {
  double first = -1, last = -1;
  int64_t count = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      const double t = (i - 1) + (-x[i - 1]) / (x[i] - x[i - 1]);
      if (first < 0) first = t;
      last = t;
      ++count;
    }
  }
  if (count < 2) return 0;
  return (count - 1) / ((last - first) / sample_rate);
}

double rms(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return n > 0 ? std::sqrt(s / n) : 0;
}

static void add_audio(AVFormatContext* oc, const media::Audio& audio, const std::string& codec_name,
                      std::vector<std::pair<AVCodecContext*, AVStream*>>* encs) {
  const std::string name = codec_name != "auto" ? codec_name : (is_mp4_like(oc->oformat) ? "aac" : "pcm_s16le");
  const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
  if (!codec) throw std::runtime_error("media_testutil: no encoder " + name);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_S16;
  enc->sample_rate = audio.sample_rate;
  av_channel_layout_default(&enc->ch_layout, audio.channels);
  enc->time_base = AVRational{1, audio.sample_rate};
  enc->bit_rate = 192000;
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc, codec, nullptr), "open audio encoder");
  AVStream* st = avformat_new_stream(oc, nullptr);
  avcodec_parameters_from_context(st->codecpar, enc);
  st->time_base = enc->time_base;
  encs->push_back({enc, st});
}

static void encode_audio(AVCodecContext* enc, AVFormatContext* oc, AVStream* st, const media::Audio& audio) {
  const int fs = enc->frame_size > 0 ? enc->frame_size : 1024;
  AVFrame* f = av_frame_alloc();
  f->format = enc->sample_fmt;
  av_channel_layout_copy(&f->ch_layout, &enc->ch_layout);
  f->sample_rate = enc->sample_rate;
  f->nb_samples = fs;
  check(av_frame_get_buffer(f, 0), "audio frame");
  const int64_t n = audio.frames();
  for (int64_t pos = 0; pos < n; pos += fs) {
    const int len = static_cast<int>(std::min<int64_t>(fs, n - pos));
    check(av_frame_make_writable(f), "writable");
    for (int c = 0; c < audio.channels; ++c) {
      for (int i = 0; i < len; ++i) {
        const float x = audio.channel(c)[pos + i];
        if (enc->sample_fmt == AV_SAMPLE_FMT_FLTP) {
          reinterpret_cast<float*>(f->data[c])[i] = x;
        } else if (enc->sample_fmt == AV_SAMPLE_FMT_S16) {
          reinterpret_cast<int16_t*>(f->data[0])[i * audio.channels + c] =
              static_cast<int16_t>(std::clamp(std::lround(x * 32768.0), -32768L, 32767L));
        } else {
          throw std::runtime_error("media_testutil: unsupported sample format");
        }
      }
    }
    // Frame-size codecs (aac) need full frames but the last; pcm takes any length.
    f->nb_samples = len;
    f->pts = pos;
    check(avcodec_send_frame(enc, f), "send audio");
    drain(enc, oc, st, nullptr);
  }
  check(avcodec_send_frame(enc, nullptr), "flush audio");
  drain(enc, oc, st, nullptr);
  av_frame_free(&f);
}

void make_clip(const std::string& path, const ClipSpec& spec) {
  av_log_set_level(AV_LOG_ERROR);  // x264 prints its settings at info level
  Writer w;
  check(avformat_alloc_output_context2(&w.oc, nullptr, nullptr, path.c_str()), "container for " + path);
  AVFormatContext* oc = w.oc;

  // Frame times (seconds) and durations.
  std::vector<double> times = spec.pts;
  if (times.empty())
    for (int i = 0; i < spec.frames; ++i) times.push_back(i / spec.fps);
  const bool vfr = !spec.pts.empty();
  const bool has_video = !times.empty();
  const double video_len =
      has_video ? times.back() + (times.size() > 1 ? times.back() - times[times.size() - 2] : 1.0 / spec.fps) : 0;

  AVCodecContext* venc = nullptr;
  AVStream* vst = nullptr;
  AVRational vtb{1, 1000};
  std::map<int64_t, int64_t> dur_by_pts;
  if (has_video) {
    vtb = vfr ? AVRational{1, 1000} : av_inv_q(av_d2q(spec.fps, 100000));
    vst = avformat_new_stream(oc, nullptr);
    if (spec.garbage_packets) {
      vst->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
      vst->codecpar->codec_id = AV_CODEC_ID_MPEG4;
      vst->codecpar->width = spec.width;
      vst->codecpar->height = spec.height;
      vst->codecpar->format = AV_PIX_FMT_YUV420P;
      vst->time_base = vtb;
    } else {
      const std::string name = spec.codec == "auto" ? video_encoder() : spec.codec;
      const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
      if (!codec) throw std::runtime_error("media_testutil: no encoder " + name);
      venc = avcodec_alloc_context3(codec);
      venc->width = spec.width;
      venc->height = spec.height;
      std::string pf = spec.pix_fmt.empty() ? (name == "mjpeg" ? "yuvj420p" : "yuv420p") : spec.pix_fmt;
      venc->pix_fmt = av_get_pix_fmt(pf.c_str());
      venc->time_base = vtb;
      if (!vfr) venc->framerate = av_d2q(spec.fps, 100000);
      venc->gop_size = 12;
      venc->thread_count = 1;
      if (name == "libx264") {
        av_opt_set(venc->priv_data, "preset", "ultrafast", 0);
        av_opt_set(venc->priv_data, "crf", "12", 0);
        // B-frames make decode order differ from presentation order: the decoders must cope.
        av_opt_set(venc->priv_data, "x264-params", "bframes=2", 0);
      } else if (name == "mpeg4" || name == "mjpeg") {
        venc->flags |= AV_CODEC_FLAG_QSCALE;
        venc->global_quality = FF_QP2LAMBDA * 2;
      }
      if (oc->oformat->flags & AVFMT_GLOBALHEADER) venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
      check(avcodec_open2(venc, codec, nullptr), "open " + name);
      avcodec_parameters_from_context(vst->codecpar, venc);
      vst->time_base = venc->time_base;
    }
    if (!vfr) vst->avg_frame_rate = av_d2q(spec.fps, 100000);
    if (spec.rotation) set_rotation(vst, spec.rotation);
  }

  std::vector<std::pair<AVCodecContext*, AVStream*>> aencs;
  media::Audio audio;
  if (spec.audio_rate > 0) {
    const double secs = spec.audio_seconds >= 0 ? spec.audio_seconds : (has_video ? video_len : 1.0);
    audio = sine(spec.audio_rate, spec.audio_channels, secs, spec.tone_hz, spec.tone_amp);
    add_audio(oc, audio, spec.audio_codec, &aencs);
  }

  if (!(oc->oformat->flags & AVFMT_NOFILE)) check(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE), "open " + path);
  check(avformat_write_header(oc, nullptr), "header");

  if (has_video) {
    std::vector<int64_t> pts(times.size());
    for (size_t i = 0; i < times.size(); ++i) pts[i] = std::llround(times[i] / av_q2d(vtb));
    for (size_t i = 0; i < pts.size(); ++i)
      dur_by_pts[pts[i]] = i + 1 < pts.size() ? pts[i + 1] - pts[i] : (i > 0 ? pts[i] - pts[i - 1] : 1);
    if (spec.garbage_packets) {
      std::mt19937 rng(7);
      AVPacket* pkt = av_packet_alloc();
      for (size_t i = 0; i < pts.size(); ++i) {
        check(av_new_packet(pkt, 256), "packet");
        for (int b = 0; b < 256; ++b) pkt->data[b] = static_cast<uint8_t>(rng());
        pkt->pts = pkt->dts = pts[i];
        pkt->duration = dur_by_pts[pts[i]];
        pkt->flags |= AV_PKT_FLAG_KEY;
        av_packet_rescale_ts(pkt, vtb, vst->time_base);
        pkt->stream_index = vst->index;
        check(av_interleaved_write_frame(oc, pkt), "write");
      }
      av_packet_free(&pkt);
    } else {
      cv::Mat rgb(spec.height, spec.width, CV_8UC3);
      AVFrame* f = av_frame_alloc();
      f->format = venc->pix_fmt;
      f->width = spec.width;
      f->height = spec.height;
      check(av_frame_get_buffer(f, 0), "video frame");
      SwsContext* sws = sws_getContext(spec.width, spec.height, AV_PIX_FMT_RGB24, spec.width, spec.height,
                                       venc->pix_fmt, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
      const Painter paint = spec.paint ? spec.paint : Painter(paint_square);
      for (size_t i = 0; i < pts.size(); ++i) {
        paint(static_cast<int>(i), times[i], rgb);
        check(av_frame_make_writable(f), "writable");
        const uint8_t* src[1] = {rgb.data};
        const int src_stride[1] = {static_cast<int>(rgb.step)};
        sws_scale(sws, src, src_stride, 0, spec.height, f->data, f->linesize);
        f->pts = pts[i];
        check(avcodec_send_frame(venc, f), "send video");
        drain(venc, oc, vst, &dur_by_pts);
      }
      check(avcodec_send_frame(venc, nullptr), "flush video");
      drain(venc, oc, vst, &dur_by_pts);
      sws_freeContext(sws);
      av_frame_free(&f);
    }
  }
  for (auto& [enc, st] : aencs) encode_audio(enc, oc, st, audio);
  check(av_write_trailer(oc), "trailer");
  if (venc) avcodec_free_context(&venc);
  for (auto& [enc, st] : aencs) avcodec_free_context(&enc);
}

void make_audio_file(const std::string& path, const media::Audio& audio) {
  av_log_set_level(AV_LOG_ERROR);
  Writer w;
  check(avformat_alloc_output_context2(&w.oc, nullptr, nullptr, path.c_str()), "container for " + path);
  std::vector<std::pair<AVCodecContext*, AVStream*>> encs;
  add_audio(w.oc, audio, "auto", &encs);
  check(avio_open(&w.oc->pb, path.c_str(), AVIO_FLAG_WRITE), "open " + path);
  check(avformat_write_header(w.oc, nullptr), "header");
  encode_audio(encs[0].first, w.oc, encs[0].second, audio);
  check(av_write_trailer(w.oc), "trailer");
  avcodec_free_context(&encs[0].first);
}

}  // namespace v2m::testutil
