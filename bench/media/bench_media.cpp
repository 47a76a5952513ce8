// Media throughput: decode + resize (CLIP 224 crop RGB, 128-px gray) and DIS flow per preset.
// Encodes its own 1080p clip (libx264 veryfast when present, else mpeg4) unless --input is
// given. Usage: bench_media [--out results.json] [--input FILE] [--seconds 3] [--repeat 2]
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <opencv2/imgproc.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>

#include "v2m/fs.h"
#include "v2m/media.h"

namespace {

using clk = std::chrono::steady_clock;
double secs(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

void check(int r, const char* what) {
  if (r < 0) throw std::runtime_error(std::string("bench_media: ") + what);
}

// A camera-like test clip: a large smooth texture panning diagonally plus a moving block.
std::string encode_clip(const std::string& path, int w, int h, int fps, int frames) {
  av_log_set_level(AV_LOG_ERROR);
  const bool x264 = avcodec_find_encoder_by_name("libx264") != nullptr;
  const AVCodec* codec = avcodec_find_encoder_by_name(x264 ? "libx264" : "mpeg4");
  AVFormatContext* oc = nullptr;
  check(avformat_alloc_output_context2(&oc, nullptr, nullptr, path.c_str()), "container");
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, fps};
  enc->framerate = AVRational{fps, 1};
  enc->gop_size = 2 * fps;
  enc->bit_rate = x264 ? 0 : 8000000;
  if (x264) {
    av_opt_set(enc->priv_data, "preset", "veryfast", 0);
    av_opt_set(enc->priv_data, "crf", "23", 0);
  }
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc, codec, nullptr), "open encoder");
  AVStream* st = avformat_new_stream(oc, nullptr);
  avcodec_parameters_from_context(st->codecpar, enc);
  st->time_base = enc->time_base;
  check(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE), "open file");
  check(avformat_write_header(oc, nullptr), "header");

  cv::Mat tex(h + frames * 4, w + frames * 6, CV_8UC3);
  cv::randu(tex, 0, 255);
  cv::GaussianBlur(tex, tex, cv::Size(0, 0), 6.0);
  cv::normalize(tex, tex, 0, 255, cv::NORM_MINMAX);
  AVFrame* f = av_frame_alloc();
  f->format = enc->pix_fmt;
  f->width = w;
  f->height = h;
  check(av_frame_get_buffer(f, 0), "frame");
  SwsContext* sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, enc->pix_fmt, SWS_BILINEAR, nullptr, nullptr, nullptr);
  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(enc, pkt) >= 0) {
      pkt->duration = 1;  // one frame (encoder time base): keeps the mp4's duration exact
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      check(av_interleaved_write_frame(oc, pkt), "write");
    }
  };
  for (int i = 0; i < frames; ++i) {
    cv::Mat rgb = tex(cv::Rect(i * 6, i * 4, w, h)).clone();
    cv::rectangle(rgb, cv::Rect((i * 17) % (w - 200), h / 3, 200, 200), cv::Scalar(240, 40, 40), cv::FILLED);
    check(av_frame_make_writable(f), "writable");
    const uint8_t* src[1] = {rgb.data};
    const int stride[1] = {static_cast<int>(rgb.step)};
    sws_scale(sws, src, stride, 0, h, f->data, f->linesize);
    f->pts = i;
    check(avcodec_send_frame(enc, f), "encode");
    drain();
  }
  avcodec_send_frame(enc, nullptr);
  drain();
  av_write_trailer(oc);
  av_packet_free(&pkt);
  sws_freeContext(sws);
  av_frame_free(&f);
  avcodec_free_context(&enc);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
  return x264 ? "libx264 veryfast crf23" : "mpeg4 8 Mb/s";
}

// Best of `repeat` runs of decode_video_frames; returns {frames, seconds}.
std::pair<int64_t, double> time_decode(const std::string& path, const v2m::media::VideoDecodeOptions& o, int repeat) {
  int64_t n = 0;
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = clk::now();
    volatile uint64_t sink = 0;
    n = v2m::media::decode_video_frames(path, o, [&](const cv::Mat& m, double) { sink = sink + m.data[0]; });
    best = std::min(best, secs(t0));
  }
  return {n, best};
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, input;
  double seconds = 3;
  int repeat = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_media: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--out") out = next();
    else if (a == "--input") input = next();
    else if (a == "--seconds") seconds = std::atof(next().c_str());
    else if (a == "--repeat") repeat = std::max(1, std::atoi(next().c_str()));
    else {
      std::fprintf(stderr, "usage: bench_media [--out FILE.json] [--input VIDEO] [--seconds S] [--repeat N]\n");
      return 2;
    }
  }
  try {
    nlohmann::json j;
    std::string clip = input;
    if (clip.empty()) {
      clip = "/tmp/v2m_bench_media_" + std::to_string(::getpid()) + ".mp4";
      const int fps = 30;
      auto t0 = clk::now();
      j["clip_encoder"] = encode_clip(clip, 1920, 1080, fps, static_cast<int>(seconds * fps));
      j["clip_encode_s"] = secs(t0);
    }
    const v2m::media::ProbeInfo info = v2m::media::probe(clip);
    j["clip"] = {{"width", info.video()->width}, {"height", info.video()->height}, {"fps", info.video()->fps},
                 {"codec", info.video()->codec}, {"duration_s", info.duration}};
    j["hardware_threads"] = std::thread::hardware_concurrency();
    j["repeat"] = repeat;

    v2m::media::VideoDecodeOptions clip224;
    clip224.fps = 0;  // every source frame
    clip224.short_side = 224;
    clip224.center_crop = true;
    auto [n1, s1] = time_decode(clip, clip224, repeat);
    j["decode_rgb224_crop"] = {{"frames", n1}, {"seconds", s1}, {"frames_per_s", n1 / s1}};

    v2m::media::VideoDecodeOptions gray128;
    gray128.fps = 0;
    gray128.short_side = 128;
    gray128.gray = true;
    auto [n2, s2] = time_decode(clip, gray128, repeat);
    j["decode_gray128"] = {{"frames", n2}, {"seconds", s2}, {"frames_per_s", n2 / s2}};

    // The model's CLIP rate: every frame is still decoded, only 2/s are converted.
    v2m::media::VideoDecodeOptions clip2 = clip224;
    clip2.fps = 2;
    auto [n3, s3] = time_decode(clip, clip2, repeat);
    j["decode_rgb224_crop_at_2fps"] = {{"frames", n3}, {"seconds", s3}, {"video_s_per_s", info.duration / s3}};

    // DIS flow on the 128-px gray frames (collected once, then timed alone).
    std::vector<cv::Mat> gray;
    v2m::media::decode_video_frames(clip, gray128, [&](const cv::Mat& m, double) { gray.push_back(m.clone()); });
    for (const char* preset : {"ultrafast", "fast", "medium"}) {
      v2m::media::DisFlow dis(preset);
      double best = 1e30, best_desc = 1e30;
      for (int r = 0; r < repeat; ++r) {
        double flow_s = 0, desc_s = 0;
        for (size_t i = 1; i < gray.size(); ++i) {
          auto t0 = clk::now();
          cv::Mat flow = dis.compute(gray[i - 1], gray[i]);
          flow_s += secs(t0);
          t0 = clk::now();
          auto d = v2m::media::motion_descriptor(flow, gray[i - 1], gray[i]);
          desc_s += secs(t0);
        }
        best = std::min(best, flow_s);
        best_desc = std::min(best_desc, desc_s);
      }
      const double pairs = static_cast<double>(gray.size() - 1);
      j["dis_flow_128"][preset] = {{"pairs", pairs},
                                   {"frame_size", std::to_string(gray[0].cols) + "x" + std::to_string(gray[0].rows)},
                                   {"pairs_per_s", pairs / best},
                                   {"descriptor_pairs_per_s", pairs / best_desc}};
    }
    // End to end as the pipeline runs it (design default: 8 fps, 128 px, medium).
    auto t0 = clk::now();
    auto mf = v2m::media::extract_motion(clip, 8, 128, "medium");
    const double em = secs(t0);
    j["extract_motion_8fps_medium"] = {{"pairs", mf.count}, {"seconds", em}, {"video_s_per_s", info.duration / em}};

    if (input.empty()) std::remove(clip.c_str());
    const std::string text = j.dump(2) + "\n";
    if (out.empty()) {
      std::cout << text;
    } else {
      v2m::atomic_write_bytes(out, text.data(), text.size());
      std::fprintf(stderr, "bench_media: wrote %s\n", out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_media: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
