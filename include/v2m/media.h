// v2m::media — everything that touches media files: probing, video frames sampled by
// presentation time, audio decode/resample, WAV/FLAC writers, muxing music into a video,
// and DIS optical-flow motion descriptors.
//
// LibTorch-free on purpose (design §2): buffers are plain vectors and cv::Mat; pipeline/
// turns them into tensors. Every failure is a v2m::Error whose message reads
// "<what>: <path>: <why>" on one line; no function writes a partial output file.
//
// Time: all times are seconds from the start of the file (the container's start_time is
// subtracted), the same origin for video, audio and mux, so streams stay in sync.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace v2m::media {

// Frames wider or taller than this are rejected before anything is allocated for them.
constexpr int kMaxFrameSide = 16384;
// ...and so are frames with more pixels than this (8K UHD is 33 Mpx): a declared size never
// drives a huge allocation.
constexpr int64_t kMaxFramePixels = int64_t{8192} * 8192;
// Default cap on the output frames of one video decode: fps sampling repeats a frame across a
// timestamp gap, and a hostile timestamp jump must not turn that into an endless loop.
constexpr int64_t kMaxVideoFrames = int64_t{1} << 20;
// The most decode_video / decode_audio hold in memory at once (4 GiB).
constexpr int64_t kMaxBufferBytes = int64_t{4} << 30;

// ---------------------------------------------------------------------------------------
// Probe

struct StreamInfo {
  int index = 0;
  std::string type = "other";  // video | audio | subtitle | data | other (cover art is "other")
  std::string codec;       // libavcodec name: "h264", "aac", ...
  int width = 0;           // stored (coded) size; displayed size is swapped for rotation 90/270
  int height = 0;
  double fps = 0;          // avg_frame_rate; 0 when the container does not say
  int rotation = 0;        // clockwise degrees a player turns frames for display: 0/90/180/270
  int64_t nb_frames = 0;   // 0 when unknown
  double duration = 0;     // seconds; 0 when unknown
  int sample_rate = 0;     // audio only
  int channels = 0;        // audio only
  int64_t bit_rate = 0;    // 0 when unknown
};

struct ProbeInfo {
  std::string path;
  std::string format;      // libavformat demuxer name
  double duration = 0;     // seconds; 0 when unknown
  int64_t bit_rate = 0;
  std::vector<StreamInfo> streams;
  int best_video = -1;     // index into `streams` of the stream the decoders use, or -1
  int best_audio = -1;

  const StreamInfo* video() const { return best_video >= 0 ? &streams[best_video] : nullptr; }
  const StreamInfo* audio() const { return best_audio >= 0 ? &streams[best_audio] : nullptr; }
};

// Reads container and stream headers (no full decode). Throws for missing/empty/non-media files.
ProbeInfo probe(const std::string& path);
std::string to_json(const ProbeInfo& info);  // nlohmann dump(2), no trailing newline
std::string to_text(const ProbeInfo& info);  // a few human-readable lines, '\n'-terminated

// ---------------------------------------------------------------------------------------
// Video

struct VideoDecodeOptions {
  // Frames per second sampled by presentation time: output frame k shows the latest source
  // frame with pts <= start + k/fps (so VFR sources come out right; targets before the first
  // frame show the first frame), until the last frame's end. <= 0: every source frame as is.
  double fps = 1.0;
  double start = 0;        // seconds
  double duration = 0;     // seconds; <= 0: to the end
  // Output size, in display orientation (after rotation). width and height > 0: exactly that;
  // only one > 0: the other keeps the aspect; else short_side > 0: short side scaled to it;
  // else the source size.
  int width = 0;
  int height = 0;
  int short_side = 0;
  // Square output: resize so the short side is S (short_side, else width, else height, else
  // the source's short side), then cut the central SxS (CLIP's resize + center crop).
  bool center_crop = false;
  bool gray = false;       // CV_8UC1 luma instead of CV_8UC3 RGB
  int threads = 0;         // decoder threads; 0 = libavcodec's choice
  int64_t max_frames = kMaxVideoFrames;  // more output frames than this: v2m::Error
};

// All frames in memory: data is [T, H, W, C] uint8, RGB or gray.
struct Frames {
  int count = 0, height = 0, width = 0, channels = 0;
  std::vector<double> timestamps;  // [count] seconds
  std::vector<uint8_t> data;       // [count, height, width, channels]
  const uint8_t* frame(int t) const { return data.data() + static_cast<size_t>(t) * height * width * channels; }
};

// Called once per output frame, in time order. `frame` is continuous (CV_8UC3 RGB or
// CV_8UC1) and only valid during the call: clone it to keep it.
using FrameCallback = std::function<void(const cv::Mat& frame, double t)>;

// Streams frames to `on_frame` holding at most two decoded frames: use for long videos.
// Returns the number of frames delivered. Throws when no frame falls in the range.
int64_t decode_video_frames(const std::string& path, const VideoDecodeOptions& opts, const FrameCallback& on_frame);

// Same frames, collected. Holds T*H*W*C bytes: prefer decode_video_frames for long videos.
Frames decode_video(const std::string& path, const VideoDecodeOptions& opts);

// ---------------------------------------------------------------------------------------
// Audio

// Planar float PCM: samples[c * frames() + n], nominally in [-1, 1].
struct Audio {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;

  int64_t frames() const { return channels > 0 ? static_cast<int64_t>(samples.size()) / channels : 0; }
  float* channel(int c) { return samples.data() + static_cast<size_t>(c) * frames(); }
  const float* channel(int c) const { return samples.data() + static_cast<size_t>(c) * frames(); }
};

// Decodes the file's (best) audio stream, converted to `sample_rate` Hz and `channels`
// (0 = keep the source's; channel changes up/down-mix with libswresample's matrix).
// duration > 0 gives exactly round(duration * rate) frames (zero-padded past the end); a
// duration whose buffer would exceed kMaxBufferBytes is an error.
Audio decode_audio(const std::string& path, int sample_rate = 0, int channels = 0, double start = 0,
                   double duration = 0);

// Resamples / remixes a buffer (libswresample); output has round(frames * out / in) frames.
Audio resample(const Audio& in, int sample_rate, int channels);

enum class WavFormat { PCM16, Float32 };

// Hand-written RIFF/WAVE. PCM16 stores clamp(lrint(x * 32768)), read back as s / 32768, so
// values on that grid (and every float, for Float32) round-trip bit-exactly.
void write_wav(const std::string& path, const Audio& audio, WavFormat format = WavFormat::PCM16);
// Reads PCM 8/16/24/32-bit and float 32/64-bit WAV (also WAVE_FORMAT_EXTENSIBLE).
Audio read_wav(const std::string& path);
// FLAC (libavcodec), 16-bit, same quantisation as PCM16 WAV.
void write_flac(const std::string& path, const Audio& audio);
// By extension: .wav (in `wav_format`) or .flac.
void write_audio(const std::string& path, const Audio& audio, WavFormat wav_format = WavFormat::PCM16);

// Writes `out` (.mp4/.mov/.mkv) with the video stream of `video_in` copied bit for bit
// (no re-encode; rotation kept) and `audio` encoded as AAC, starting at video time 0 and
// trimmed to the video's length. Other streams of `video_in` are dropped.
void mux(const std::string& video_in, const Audio& audio, const std::string& out,
         int64_t audio_bit_rate = 192000);

// ---------------------------------------------------------------------------------------
// Motion

enum class FlowPreset { UltraFast, Fast, Medium };
FlowPreset parse_flow_preset(const std::string& name);  // "ultrafast" | "fast" | "medium"

// OpenCV's DIS optical flow (Kroeger et al., ECCV 2016). Keeps state: one per thread.
class DisFlow {
 public:
  explicit DisFlow(FlowPreset preset = FlowPreset::Medium);
  explicit DisFlow(const std::string& preset);
  ~DisFlow();
  DisFlow(DisFlow&&) noexcept;
  DisFlow& operator=(DisFlow&&) noexcept;

  // prev, next: CV_8UC1, same size -> CV_32FC2 (dx, dy) per pixel of prev, in pixels:
  // prev(y, x) ~ next(y + dy, x + dx).
  cv::Mat compute(const cv::Mat& prev, const cv::Mat& next);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Motion descriptor layout (float, motion_descriptor_dim(grid, bins) values):
//   [0, grid*grid*bins)   per cell (row-major over a grid x grid split of the frame), a
//                         histogram of flow direction (bin b covers angles
//                         [b, b+1) * 2pi/bins of atan2(dy, dx), image axes: +x right,
//                         +y down), each pixel adding its magnitude; divided by the cell's
//                         pixel count (so: mean px of motion per direction).
//   then 2                global mean flow dx, dy (px)
//   then 4                magnitude mean, std, max, 90th percentile (px)
//   then 1                scene cut: 1.0 when next is not explained by prev, else 0.0
constexpr int kMotionGlobalValues = 7;
constexpr int motion_descriptor_dim(int grid, int bins) { return grid * grid * bins + kMotionGlobalValues; }

// Mean absolute gray difference (0..255) above which a pair counts as a scene cut.
constexpr double kSceneCutThreshold = 40.0;

// flow from DisFlow::compute(prev, next); prev/next are the CV_8UC1 frames it came from.
std::vector<float> motion_descriptor(const cv::Mat& flow, const cv::Mat& prev, const cv::Mat& next, int grid = 4,
                                     int bins = 8, double cut_threshold = kSceneCutThreshold);

// One descriptor per pair of consecutive gray frames sampled at flow_fps.
struct MotionFeatures {
  int count = 0;                    // T: number of frame pairs (0 for a one-frame range)
  int dim = 0;                      // D = motion_descriptor_dim(grid, bins)
  std::vector<double> timestamps;   // [T] midpoint time of each pair, seconds
  std::vector<float> data;          // [T, D]
};

MotionFeatures extract_motion(const std::string& path, double flow_fps = 8, int short_side = 128,
                              const std::string& preset = "medium", double start = 0, double duration = 0,
                              int grid = 4, int bins = 8);

}  // namespace v2m::media
