// Video frames sampled by presentation time, rotated for display, scaled/cropped by swscale.
#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "media/av_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

namespace v2m::media {

using namespace detail;

namespace {

// Timestamps are compared with a tolerance so a frame at exactly k/fps (after rational ->
// double rounding) counts as "at or before" target k.
constexpr double kEps = 1e-6;

int64_t frame_duration_ts(const AVFrame* f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
  return f->duration;
#else
  return f->pkt_duration;
#endif
}

bool is_full_range_yuvj(int fmt) {
  return fmt == AV_PIX_FMT_YUVJ420P || fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUVJ444P ||
         fmt == AV_PIX_FMT_YUVJ440P || fmt == AV_PIX_FMT_YUVJ411P;
}

// Turns decoded frames of any pixel format into the requested RGB/gray output. The output
// geometry is fixed by the first frame, so every frame of a run has the same size even if
// the stream changes resolution midway.
class Converter {
 public:
  Converter(const VideoDecodeOptions& o, int rotation, const std::string& path, const std::string& what)
      : o_(o), rotation_(rotation), path_(path), what_(what) {}

  const cv::Mat& convert(const AVFrame* f) {
    check_frame_size(f->width, f->height, path_, what_);
    if (!planned_) plan(f->width, f->height);
    const bool rotated = rotation_ == 90 || rotation_ == 270;
    const int sw = rotated ? disp_h_ : disp_w_, sh = rotated ? disp_w_ : disp_h_;  // source orientation
    if (!sws_ || f->width != src_w_ || f->height != src_h_ || f->format != src_fmt_ || f->color_range != src_range_ ||
        f->colorspace != src_space_) {
      src_w_ = f->width;
      src_h_ = f->height;
      src_fmt_ = f->format;
      src_range_ = f->color_range;
      src_space_ = f->colorspace;
      sws_.reset(sws_getContext(src_w_, src_h_, static_cast<AVPixelFormat>(src_fmt_), sw, sh,
                                o_.gray ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
      if (!sws_) {
        const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(src_fmt_));
        throw Error(describe(what_, path_, std::string("cannot convert pixel format ") + (name ? name : "unknown")));
      }
      set_colorspace(f);
      // Rows padded to 64 bytes: swscale's SIMD paths want aligned destination rows.
      const int row = (sw * channels() + 63) / 64 * 64;
      scaled_buf_.create(sh + 1, row, CV_8UC1);
      scaled_ = cv::Mat(sh, sw, o_.gray ? CV_8UC1 : CV_8UC3, scaled_buf_.data, row);
    }
    uint8_t* dst[4] = {scaled_.data, nullptr, nullptr, nullptr};
    int dst_stride[4] = {static_cast<int>(scaled_.step), 0, 0, 0};
    sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);

    cv::Mat img = scaled_;
    if (rotation_ != 0) {
      const int code = rotation_ == 90 ? cv::ROTATE_90_CLOCKWISE
                       : rotation_ == 180 ? cv::ROTATE_180
                                          : cv::ROTATE_90_COUNTERCLOCKWISE;
      cv::rotate(scaled_, rotated_, code);
      img = rotated_;
    }
    if (out_w_ != disp_w_ || out_h_ != disp_h_) {
      img(cv::Rect((disp_w_ - out_w_) / 2, (disp_h_ - out_h_) / 2, out_w_, out_h_)).copyTo(out_);
    } else if (img.isContinuous()) {
      out_ = img;
    } else {
      img.copyTo(out_);
    }
    return out_;
  }

  const cv::Mat& last() const { return out_; }

 private:
  int channels() const { return o_.gray ? 1 : 3; }

  // Output size in display orientation (see VideoDecodeOptions).
  void plan(int src_w, int src_h) {
    const bool rotated = rotation_ == 90 || rotation_ == 270;
    const double w0 = rotated ? src_h : src_w, h0 = rotated ? src_w : src_h;
    auto scale_to = [](double a, double b, int target) {
      return static_cast<int>(std::max(1.0, std::round(a * target / b)));
    };
    auto short_side_to = [&](int s) {
      if (w0 <= h0) {
        disp_w_ = s;
        disp_h_ = std::max(s, scale_to(h0, w0, s));
      } else {
        disp_h_ = s;
        disp_w_ = std::max(s, scale_to(w0, h0, s));
      }
    };
    if (o_.center_crop) {
      const int s = o_.short_side > 0 ? o_.short_side
                    : o_.width > 0    ? o_.width
                    : o_.height > 0   ? o_.height
                                      : static_cast<int>(std::min(w0, h0));
      short_side_to(s);
      out_w_ = out_h_ = s;
    } else {
      if (o_.width > 0 && o_.height > 0) {
        disp_w_ = o_.width;
        disp_h_ = o_.height;
      } else if (o_.width > 0) {
        disp_w_ = o_.width;
        disp_h_ = scale_to(h0, w0, o_.width);
      } else if (o_.height > 0) {
        disp_h_ = o_.height;
        disp_w_ = scale_to(w0, h0, o_.height);
      } else if (o_.short_side > 0) {
        short_side_to(o_.short_side);
      } else {
        disp_w_ = static_cast<int>(w0);
        disp_h_ = static_cast<int>(h0);
      }
      out_w_ = disp_w_;
      out_h_ = disp_h_;
    }
    // Extreme aspect ratios can turn a small short side into a huge long side.
    if (disp_w_ > kMaxFrameSide || disp_h_ > kMaxFrameSide)
      throw Error(describe(what_, path_,
                           "output size " + std::to_string(disp_w_) + "x" + std::to_string(disp_h_) + " is over " +
                               std::to_string(kMaxFrameSide)));
    planned_ = true;
  }

  void set_colorspace(const AVFrame* f) {
    const int src_full = f->color_range == AVCOL_RANGE_JPEG || is_full_range_yuvj(f->format) ? 1 : 0;
    int space = f->colorspace;
    // Untagged streams: HD is BT.709 in practice (what players assume), SD is BT.601.
    if (space == AVCOL_SPC_UNSPECIFIED || space == AVCOL_SPC_RESERVED || space == AVCOL_SPC_RGB)
      space = f->height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
    // Output is full range RGB / full range luma. Fails harmlessly for RGB sources.
    sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(space), src_full, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                             0, 1 << 16, 1 << 16);
  }

  const VideoDecodeOptions& o_;
  const int rotation_;
  const std::string& path_;
  const std::string& what_;
  bool planned_ = false;
  int disp_w_ = 0, disp_h_ = 0, out_w_ = 0, out_h_ = 0;
  int src_w_ = -1, src_h_ = -1, src_fmt_ = -1, src_range_ = -1, src_space_ = -1;
  SwsPtr sws_;
  cv::Mat scaled_buf_, scaled_, rotated_, out_;
};

void validate(const VideoDecodeOptions& o, const std::string& path, const std::string& what) {
  auto bad = [&](const std::string& why) { throw Error(describe(what, path, why)); };
  if (!std::isfinite(o.fps) || o.fps < 0 || o.fps > 1000) bad("fps must be in [0, 1000]");
  if (!std::isfinite(o.start) || o.start < 0) bad("start must be >= 0");
  if (!std::isfinite(o.duration)) bad("duration must be finite");
  for (int v : {o.width, o.height, o.short_side})
    if (v < 0 || v > kMaxFrameSide) bad("output size must be in 0.." + std::to_string(kMaxFrameSide));
  if (o.max_frames < 1) bad("max_frames must be >= 1");
}

}  // namespace

int64_t decode_video_frames(const std::string& path, const VideoDecodeOptions& opts, const FrameCallback& on_frame) {
  const std::string what = "cannot decode video";
  validate(opts, path, what);
  InputPtr fmt = open_input(path, what);
  const int vs = find_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, path, what);
  AVStream* st = fmt->streams[vs];
  CodecCtxPtr dec = open_decoder(st, path, what, opts.threads);
  const double origin = origin_seconds(fmt.get());
  const AVRational tb = st->time_base;
  const double nominal_period = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? 1.0 / av_q2d(st->avg_frame_rate) : 0;
  if (opts.start > 0) seek_before(fmt.get(), vs, opts.start);

  const double end_limit = opts.duration > 0 ? opts.start + opts.duration : std::numeric_limits<double>::infinity();
  Converter conv(opts, stream_rotation(st), path, what);
  int64_t delivered = 0;
  auto count_frame = [&] {
    if (delivered >= opts.max_frames)
      throw Error(describe(what, path,
                           "more than " + std::to_string(opts.max_frames) +
                               " output frames (timestamps jump far ahead, or the range is too long: pass a duration)"));
    ++delivered;
  };

  // Sampling state: `held` is the latest decoded frame; it is shown at every target time
  // before the next frame's pts. Only frames that are shown get converted.
  FramePtr held = make_frame();
  bool have_held = false, held_converted = false;
  double held_t = 0, held_dur = 0, last_delta = 0;
  int64_t k = 0;
  auto target = [&] { return opts.start + static_cast<double>(k) / opts.fps; };
  auto emit_held = [&] {
    const cv::Mat& m = held_converted ? conv.last() : conv.convert(held.get());
    held_converted = true;
    count_frame();
    on_frame(m, target());
    ++k;
  };

  auto on_decoded = [&](AVFrame* f) -> bool {
    double t = f->best_effort_timestamp != AV_NOPTS_VALUE
                   ? ts_seconds(f->best_effort_timestamp, tb, origin)
                   : (have_held ? held_t + (last_delta > 0 ? last_delta : nominal_period) : 0.0);
    if (have_held && t < held_t) t = held_t;  // broken pts: keep time monotonic
    const int64_t d = frame_duration_ts(f);
    const double dur = d > 0 ? static_cast<double>(d) * av_q2d(tb) : 0.0;
    if (opts.fps <= 0) {  // every frame in [start, end)
      if (t >= end_limit - kEps) return false;
      if (have_held) last_delta = t - held_t;
      have_held = true;
      held_t = t;
      if (t >= opts.start - kEps) {
        count_frame();
        on_frame(conv.convert(f), t);
      }
      return true;
    }
    if (have_held) {
      last_delta = t - held_t;
      while (target() < end_limit - kEps && t > target() + kEps) emit_held();
      if (target() >= end_limit - kEps) return false;
    }
    av_frame_unref(held.get());
    av_frame_move_ref(held.get(), f);
    have_held = true;
    held_converted = false;
    held_t = t;
    held_dur = dur;
    return true;
  };
  const DecodeStats stats = decode_stream(fmt.get(), dec.get(), vs, on_decoded);

  if (opts.fps > 0 && have_held) {
    // The last frame lasts its own duration (else the previous frame interval, else the
    // nominal period, else one output period: a lone frame without timing still shows).
    const double d = held_dur > 0         ? held_dur
                     : last_delta > 0     ? last_delta
                     : nominal_period > 0 ? nominal_period
                                          : 1.0 / opts.fps;
    const double stop = std::min(end_limit, held_t + d);
    while (target() < stop - kEps) emit_held();
  }
  if (delivered == 0) {
    if (stats.frames == 0) {
      std::string why = "no decodable video frames";
      if (stats.failed_packets > 0) why += " (" + std::to_string(stats.failed_packets) + " corrupt packets)";
      else if (stats.read_error) why += " (read error: truncated?)";
      throw Error(describe(what, path, why));
    }
    char buf[128];
    std::snprintf(buf, sizeof buf, "no frames in the requested range (start %.3f s, video ends at %.3f s)", opts.start,
                  held_t);
    throw Error(describe(what, path, buf));
  }
  return delivered;
}

Frames decode_video(const std::string& path, const VideoDecodeOptions& opts) {
  Frames out;
  decode_video_frames(path, opts, [&](const cv::Mat& m, double t) {
    if (out.count == 0) {
      out.height = m.rows;
      out.width = m.cols;
      out.channels = m.channels();
    }
    const size_t n = static_cast<size_t>(out.height) * out.width * out.channels;
    if (out.data.size() + n > static_cast<size_t>(kMaxBufferBytes))
      throw Error(describe("cannot decode video", path,
                           "the frames need more than " + std::to_string(kMaxBufferBytes >> 20) +
                               " MiB: use decode_video_frames, a lower fps or a shorter duration"));
    out.data.insert(out.data.end(), m.data, m.data + n);
    out.timestamps.push_back(t);
    ++out.count;
  });
  return out;
}

}  // namespace v2m::media
