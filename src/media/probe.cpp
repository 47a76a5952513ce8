// probe(): container + stream headers as plain structs, JSON and text.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "media/av_util.h"
#include "v2m/media.h"

namespace v2m::media {

using namespace detail;

namespace {

const char* stream_type(AVMediaType t) {
  switch (t) {
    case AVMEDIA_TYPE_VIDEO: return "video";
    case AVMEDIA_TYPE_AUDIO: return "audio";
    case AVMEDIA_TYPE_SUBTITLE: return "subtitle";
    case AVMEDIA_TYPE_DATA: return "data";
    default: return "other";
  }
}

// Matroska keeps per-stream durations only as a "DURATION" tag (HH:MM:SS.nnnnnnnnn).
double duration_tag(const AVStream* st) {
  const AVDictionaryEntry* e = av_dict_get(st->metadata, "DURATION", nullptr, 0);
  if (!e) return 0;
  int h = 0, m = 0;
  double s = 0;
  if (std::sscanf(e->value, "%d:%d:%lf", &h, &m, &s) != 3) return 0;
  return h * 3600.0 + m * 60.0 + s;
}

std::string fmt_double(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

}  // namespace

ProbeInfo probe(const std::string& path) {
  InputPtr fmt = open_input(path, "cannot probe");
  ProbeInfo info;
  info.path = path;
  info.format = fmt->iformat->name;
  info.duration = fmt->duration > 0 ? static_cast<double>(fmt->duration) / AV_TIME_BASE : 0.0;
  info.bit_rate = fmt->bit_rate > 0 ? fmt->bit_rate : 0;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    const AVCodecParameters* par = st->codecpar;
    StreamInfo s;
    s.index = static_cast<int>(i);
    s.type = stream_type(par->codec_type);
    // Cover art is stored as a one-frame "video" stream; it is not the video.
    if (s.type == "video" && (st->disposition & AV_DISPOSITION_ATTACHED_PIC)) s.type = "other";
    s.codec = avcodec_get_name(par->codec_id);
    s.bit_rate = par->bit_rate > 0 ? par->bit_rate : 0;
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE) {
      s.duration = static_cast<double>(st->duration) * av_q2d(st->time_base);
    } else {
      s.duration = duration_tag(st);
    }
    s.nb_frames = st->nb_frames > 0 ? st->nb_frames : 0;
    if (s.type == "video") {
      s.width = par->width;
      s.height = par->height;
      if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) s.fps = av_q2d(st->avg_frame_rate);
      s.rotation = stream_rotation(st);
    } else if (s.type == "audio") {
      s.sample_rate = par->sample_rate;
      s.channels = par->ch_layout.nb_channels;
    }
    info.streams.push_back(s);
  }
  info.best_video = best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO);
  info.best_audio = best_stream(fmt.get(), AVMEDIA_TYPE_AUDIO);
  return info;
}

std::string to_json(const ProbeInfo& info) {
  nlohmann::json j;
  j["path"] = info.path;
  j["format"] = info.format;
  j["duration"] = info.duration;
  j["bit_rate"] = info.bit_rate;
  j["best_video"] = info.best_video;
  j["best_audio"] = info.best_audio;
  auto& arr = j["streams"] = nlohmann::json::array();
  for (const auto& s : info.streams) {
    nlohmann::json o;
    o["index"] = s.index;
    o["type"] = s.type;
    o["codec"] = s.codec;
    o["duration"] = s.duration;
    o["bit_rate"] = s.bit_rate;
    if (s.type == "video") {
      o["width"] = s.width;
      o["height"] = s.height;
      o["fps"] = s.fps;
      o["rotation"] = s.rotation;
      o["nb_frames"] = s.nb_frames;
    } else if (s.type == "audio") {
      o["sample_rate"] = s.sample_rate;
      o["channels"] = s.channels;
      o["nb_frames"] = s.nb_frames;
    }
    arr.push_back(std::move(o));
  }
  return j.dump(2);
}

std::string to_text(const ProbeInfo& info) {
  std::ostringstream os;
  os << "file:     " << info.path << "\n";
  os << "format:   " << info.format << "\n";
  os << "duration: " << (info.duration > 0 ? fmt_double(info.duration, 3) + " s" : "unknown") << "\n";
  if (info.bit_rate > 0) os << "bit rate: " << info.bit_rate / 1000 << " kb/s\n";
  for (const auto& s : info.streams) {
    os << "stream " << s.index << ": " << s.type << " " << s.codec;
    if (s.type == "video") {
      os << ", " << s.width << "x" << s.height;
      if (s.rotation) os << " (rotation " << s.rotation << ")";
      if (s.fps > 0) os << ", " << fmt_double(s.fps, 3) << " fps";
      if (s.nb_frames > 0) os << ", " << s.nb_frames << " frames";
    } else if (s.type == "audio") {
      os << ", " << s.sample_rate << " Hz, " << s.channels << " ch";
    }
    if (s.duration > 0) os << ", " << fmt_double(s.duration, 3) << " s";
    os << "\n";
  }
  return os.str();
}

}  // namespace v2m::media
