// Hostile media: truncations, seeded byte flips, containers that lie about the frame size,
// the duration or the timestamps, dozens of streams, extreme frame rates. Every case ends in
// one v2m::Error line "what: path: why" or a correct result, in bounded time and memory.
// The clips are made here (media_testutil + a small libav writer below), then mutated.
#include <gtest/gtest.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
}

#include <sys/resource.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

namespace {

// One stream of a hand-made container: packets are written as given, with the given pts
// (in `tb` units), so the container can claim anything about them.
struct RawStream {
  AVMediaType type = AVMEDIA_TYPE_VIDEO;
  AVCodecID codec = AV_CODEC_ID_MJPEG;
  int width = 0, height = 0;          // declared (video)
  int sample_rate = 0, channels = 0;  // declared (audio)
  AVRational tb{1, 1000};
  std::vector<std::string> packets;
  std::vector<int64_t> pts;
};

void write_container(const std::string& path, const std::vector<RawStream>& streams, const char* format = "matroska") {
  AVFormatContext* oc = nullptr;
  ASSERT_GE(avformat_alloc_output_context2(&oc, nullptr, format, path.c_str()), 0);
  for (const auto& s : streams) {
    AVStream* st = avformat_new_stream(oc, nullptr);
    st->time_base = s.tb;
    AVCodecParameters* par = st->codecpar;
    par->codec_type = s.type;
    par->codec_id = s.codec;
    if (s.type == AVMEDIA_TYPE_VIDEO) {
      par->width = s.width;
      par->height = s.height;
      par->format = AV_PIX_FMT_YUVJ420P;
    } else {
      par->sample_rate = s.sample_rate;
      av_channel_layout_default(&par->ch_layout, s.channels);
      par->format = AV_SAMPLE_FMT_S16;
      par->bits_per_coded_sample = 16;
    }
  }
  ASSERT_GE(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE), 0);
  ASSERT_GE(avformat_write_header(oc, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  for (size_t i = 0; i < streams.size(); ++i) {
    const auto& s = streams[i];
    for (size_t k = 0; k < s.packets.size(); ++k) {
      ASSERT_GE(av_new_packet(pkt, static_cast<int>(s.packets[k].size())), 0);
      std::memcpy(pkt->data, s.packets[k].data(), s.packets[k].size());
      pkt->stream_index = static_cast<int>(i);
      pkt->pts = pkt->dts = av_rescale_q(s.pts[k], s.tb, oc->streams[i]->time_base);
      pkt->flags |= AV_PKT_FLAG_KEY;
      ASSERT_GE(av_interleaved_write_frame(oc, pkt), 0);
    }
  }
  av_packet_free(&pkt);
  ASSERT_GE(av_write_trailer(oc), 0);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
}

// Real JPEG frames (64x48) cut out of an mjpeg .mkv made by media_testutil.
std::vector<std::string> jpeg_frames(const std::string& dir, int n) {
  ClipSpec spec;
  spec.codec = "mjpeg";
  spec.frames = n;
  const std::string mkv = dir + "/jpeg_source.mkv";
  make_clip(mkv, spec);
  const std::string bytes = read_text(mkv);
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = bytes.find("\xff\xd8\xff", pos)) != std::string::npos) {
    const size_t end = bytes.find("\xff\xd9", pos);
    if (end == std::string::npos) break;
    out.push_back(bytes.substr(pos, end + 2 - pos));
    pos = end + 2;
  }
  return out;
}

RawStream mjpeg_stream(const std::vector<std::string>& jpegs, int w, int h, AVRational tb, int64_t step) {
  RawStream s;
  s.width = w;
  s.height = h;
  s.tb = tb;
  for (size_t k = 0; k < jpegs.size(); ++k) {
    s.packets.push_back(jpegs[k]);
    s.pts.push_back(static_cast<int64_t>(k) * step);
  }
  return s;
}

RawStream pcm_stream(int rate, int channels, double seconds) {
  RawStream s;
  s.type = AVMEDIA_TYPE_AUDIO;
  s.codec = AV_CODEC_ID_PCM_S16LE;
  s.sample_rate = rate;
  s.channels = channels;
  s.tb = AVRational{1, rate};
  const int per = rate / 10;  // 100 ms packets
  for (int64_t at = 0; at < static_cast<int64_t>(seconds * rate); at += per) {
    s.packets.push_back(std::string(static_cast<size_t>(per) * channels * 2, '\x10'));
    s.pts.push_back(at);
  }
  return s;
}

long peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// Either a v2m::Error line "<what>: <path>: ..." or `check` of the result; anything else fails.
void error_or(const std::string& what, const std::string& path, const std::function<void()>& run) {
  try {
    run();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(what + ": " + path + ": ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": " << what << ": not a v2m::Error: " << e.what();
  }
}

// The decoders every input goes through, with output bounds that hold for any clip of at
// most `seconds` of content.
void exercise(const std::string& path) {
  error_or("cannot probe", path, [&] { media::to_json(media::probe(path)); });
  error_or("cannot decode video", path, [&] {
    media::VideoDecodeOptions o;
    o.fps = 4;
    o.short_side = 32;
    o.max_frames = 2000;  // a flipped timestamp may jump far ahead: the cap ends that
    int64_t n = 0;
    const int64_t got = media::decode_video_frames(path, o, [&](const cv::Mat& m, double) {
      ASSERT_FALSE(m.empty());
      ASSERT_TRUE(m.isContinuous());
      ++n;
    });
    EXPECT_EQ(got, n);
    EXPECT_LE(n, 2000);
  });
  error_or("cannot decode audio", path, [&] {
    const media::Audio a = media::decode_audio(path, 16000, 1, 0, 1.0);
    EXPECT_EQ(a.frames(), 16000);
  });
  error_or("cannot read wav", path, [&] {
    const media::Audio a = media::read_wav(path);
    EXPECT_GT(a.channels, 0);
  });
}

}  // namespace

TEST(HostileMedia, TruncationsAtManyOffsetsErrorOrDecodeWhatIsThere) {
  TempDir dir;
  ClipSpec spec;
  spec.frames = 10;
  spec.audio_rate = 16000;
  for (const std::string ext : {".mp4", ".mkv"}) {
    const std::string full = dir.path() + "/full" + ext;
    make_clip(full, spec);
    const std::string bytes = read_text(full);
    std::vector<size_t> cuts = {0, 1, 4, 8, 12, 16, 32, 64, 100, 200};
    for (int i = 1; i < 24; ++i) cuts.push_back(bytes.size() * i / 24);
    cuts.push_back(bytes.size() - 1);
    for (size_t cut : cuts) {
      const std::string p = dir.path() + "/cut_" + std::to_string(cut) + ext;
      write_text(p, bytes.substr(0, cut));
      exercise(p);
    }
  }
  EXPECT_LT(peak_rss_mb(), 2048);
}

TEST(HostileMedia, SeededByteFlipsErrorOrDecode) {
  TempDir dir;
  ClipSpec spec;
  spec.frames = 10;
  spec.audio_rate = 16000;
  std::mt19937 rng(1234);
  for (const std::string ext : {".mkv", ".mp4"}) {
    const std::string full = dir.path() + "/full" + ext;
    make_clip(full, spec);
    const std::string bytes = read_text(full);
    for (int v = 0; v < 20; ++v) {
      std::string mutated = bytes;
      const int flips = 1 + static_cast<int>(rng() % 16);
      for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] ^= static_cast<char>(1 + rng() % 255);
      const std::string p = dir.path() + "/flip_" + std::to_string(v) + ext;
      write_text(p, mutated);
      exercise(p);
    }
  }
  EXPECT_LT(peak_rss_mb(), 2048);
}

TEST(HostileMedia, AbsurdDeclaredFrameSizesNeverDriveAllocations) {
  TempDir dir;
  const auto jpegs = jpeg_frames(dir.path(), 3);
  ASSERT_EQ(jpegs.size(), 3u);
  // The container lies (65535x65535, 16384x16384, 1x100000), the JPEGs are 64x48: libavcodec
  // refuses the declared size (max_pixels) and stream-info probing takes the real one from
  // the bitstream, so probe and decode report the truth and allocate for 64x48. (A declared
  // height well over the JPEG's makes the MJPEG decoder pair frames as interlaced fields:
  // 64x96 frames, fewer of them; still nothing near the declared size.)
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{65535, 65535}, {16384, 16384}, {1, 100000}}) {
    const std::string p = dir.path() + "/lie_" + std::to_string(w) + "x" + std::to_string(h) + ".mkv";
    write_container(p, {mjpeg_stream(jpegs, w, h, {1, 25}, 1)});
    const media::ProbeInfo info = media::probe(p);
    ASSERT_NE(info.video(), nullptr);
    EXPECT_EQ(info.video()->width, 64);
    EXPECT_TRUE(info.video()->height == 48 || info.video()->height == 96) << info.video()->height;
    const media::Frames f = media::decode_video(p, every_frame());
    EXPECT_EQ(f.width, 64);
    EXPECT_TRUE(f.height == 48 || f.height == 96) << f.height;
    EXPECT_EQ(f.count, f.height == 48 ? 3 : 1);
  }
  // The container is honest, the JPEG headers inside claim 65535x65535: the decoder refuses
  // each frame (max_pixels) and no frame comes out.
  std::vector<std::string> patched = jpegs;
  for (auto& j : patched) {
    const size_t sof = j.find("\xff\xc0");
    ASSERT_NE(sof, std::string::npos);
    j.replace(sof + 5, 4, "\xff\xff\xff\xff");  // FFC0, length(2), precision(1), height(2), width(2)
  }
  const std::string p = dir.path() + "/sof.mkv";
  write_container(p, {mjpeg_stream(patched, 64, 48, {1, 25}, 1)});
  try {
    media::decode_video(p, every_frame());
    ADD_FAILURE() << "decoded " << p;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no decodable video frames"), std::string::npos) << e.what();
  }
  EXPECT_LT(peak_rss_mb(), 2048);
}

TEST(HostileMedia, ZeroFrameSingleFrameAndAudioOnlyFiles) {
  TempDir dir;
  const auto jpegs = jpeg_frames(dir.path(), 1);
  ASSERT_EQ(jpegs.size(), 1u);
  // A video stream with no packets at all.
  const std::string empty = dir.path() + "/no_frames.mkv";
  write_container(empty, {mjpeg_stream({}, 64, 48, {1, 25}, 1), pcm_stream(16000, 1, 0.5)});
  EXPECT_NE(media::probe(empty).video(), nullptr);
  try {
    media::decode_video(empty, every_frame());
    ADD_FAILURE() << "decoded frames from an empty stream";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no decodable video frames"), std::string::npos) << e.what();
  }
  EXPECT_EQ(media::decode_audio(empty, 16000, 1).frames(), 8000);

  // One frame: every mode gives exactly that frame.
  const std::string one = dir.path() + "/one.mkv";
  write_container(one, {mjpeg_stream(jpegs, 64, 48, {1, 25}, 1)});
  EXPECT_EQ(media::decode_video(one, every_frame()).count, 1);
  media::VideoDecodeOptions o;
  o.fps = 25;
  const media::Frames f = media::decode_video(one, o);
  EXPECT_GE(f.count, 1);
  EXPECT_LE(f.count, 2);
  EXPECT_EQ(f.width, 64);

  // Audio only.
  const std::string audio = dir.path() + "/audio.mkv";
  ClipSpec a;
  a.frames = 0;
  a.audio_rate = 16000;
  make_clip(audio, a);
  EXPECT_EQ(media::probe(audio).video(), nullptr);
  EXPECT_THROW(media::decode_video(audio, every_frame()), Error);
  EXPECT_EQ(media::decode_audio(audio, 16000, 1).frames(), 16000);
}

TEST(HostileMedia, DozensOfStreamsProbeAndDecodeTheBestOnes) {
  TempDir dir;
  const auto jpegs = jpeg_frames(dir.path(), 5);
  std::vector<RawStream> streams;
  for (int i = 0; i < 20; ++i) streams.push_back(mjpeg_stream(jpegs, 64, 48, {1, 25}, 1));
  for (int i = 0; i < 20; ++i) streams.push_back(pcm_stream(8000, 1 + i % 4, 0.2));
  const std::string p = dir.path() + "/many.mkv";
  write_container(p, streams);
  const media::ProbeInfo info = media::probe(p);
  EXPECT_EQ(info.streams.size(), 40u);
  ASSERT_NE(info.video(), nullptr);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_EQ(media::decode_video(p, every_frame()).count, 5);
  EXPECT_EQ(media::decode_audio(p, 8000, 1, 0, 0.2).frames(), 1600);
}

TEST(HostileMedia, ExtremeFrameRatesSampleCorrectly) {
  TempDir dir;
  const auto jpegs = jpeg_frames(dir.path(), 3);
  ASSERT_EQ(jpegs.size(), 3u);
  media::VideoDecodeOptions o;
  o.fps = 1;
  o.short_side = 16;
  o.gray = true;
  // One million frames per second (NUT keeps the microsecond time base; Matroska would round
  // to milliseconds): three frames within 3 us sample to a single output frame.
  const std::string fast = dir.path() + "/fast.nut";
  RawStream s = mjpeg_stream(jpegs, 64, 48, {1, 1000000}, 1);
  write_container(fast, {s}, "nut");
  EXPECT_EQ(media::decode_video(fast, every_frame()).count, 3);
  const media::Frames f = media::decode_video(fast, o);
  EXPECT_EQ(f.count, 1);
  // One frame per 1000 s: each frame is held for 1000 outputs at 1 fps (3000 in all), streamed.
  const std::string slow = dir.path() + "/slow.mkv";
  write_container(slow, {mjpeg_stream(jpegs, 64, 48, {1, 1000}, 1000000)});
  int64_t n = 0;
  double last_t = -1;
  EXPECT_EQ(media::decode_video_frames(slow, o,
                                       [&](const cv::Mat&, double t) {
                                         EXPECT_GT(t, last_t);
                                         last_t = t;
                                         ++n;
                                       }),
            3000);
  EXPECT_EQ(n, 3000);
}

TEST(HostileMedia, TimestampJumpsAndLyingDurationsStayBounded) {
  TempDir dir;
  const auto jpegs = jpeg_frames(dir.path(), 2);
  ASSERT_EQ(jpegs.size(), 2u);
  media::VideoDecodeOptions o;
  o.fps = 1;
  o.short_side = 16;
  o.gray = true;
  // The second frame claims to be ten hours in: 36000 one-second outputs, streamed, fast
  // (the held frame is converted once).
  const std::string jump = dir.path() + "/jump.mkv";
  RawStream s = mjpeg_stream(jpegs, 64, 48, {1, 1000}, 36000 * 1000);
  write_container(jump, {s});
  int64_t n = 0;
  EXPECT_GE(media::decode_video_frames(jump, o, [&](const cv::Mat&, double) { ++n; }), 36000);
  // A cap turns that into an error instead of an unbounded loop or buffer.
  o.max_frames = 1000;
  try {
    media::decode_video_frames(jump, o, [](const cv::Mat&, double) {});
    ADD_FAILURE() << "no error past max_frames";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1000 output frames"), std::string::npos) << e.what();
  }

  // A Matroska file declaring ten hours (Segment Duration patched) with one second of data:
  // probe reports the claim; the decoders return what is there.
  ClipSpec spec;
  spec.frames = 25;
  spec.audio_rate = 16000;
  const std::string mkv = dir.path() + "/long.mkv";
  make_clip(mkv, spec);
  std::string bytes = read_text(mkv);
  const size_t dur = bytes.find("\x44\x89\x88");  // Duration element, 8-byte float (ms)
  ASSERT_NE(dur, std::string::npos);
  const double ms = 36000.0 * 1000.0;
  uint64_t bits;
  std::memcpy(&bits, &ms, 8);
  for (int i = 0; i < 8; ++i) bytes[dur + 3 + i] = static_cast<char>(bits >> (8 * (7 - i)));
  write_text(mkv, bytes);
  EXPECT_NEAR(media::probe(mkv).duration, 36000.0, 1.0);
  media::VideoDecodeOptions every_second;
  every_second.fps = 1;
  EXPECT_EQ(media::decode_video(mkv, every_second).count, 1);
  const media::Audio a = media::decode_audio(mkv, 16000, 1);
  EXPECT_NEAR(static_cast<double>(a.frames()), 16000.0, 1600.0);

  // Asking for ten hours of audio is fine (576 M samples would not be): the cap is bytes.
  try {
    media::decode_audio(mkv, 48000, 64, 0, 36000.0);
    ADD_FAILURE() << "no error for a 66 GiB request";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MiB of samples"), std::string::npos) << e.what();
  }
  EXPECT_LT(peak_rss_mb(), 2048);
}
