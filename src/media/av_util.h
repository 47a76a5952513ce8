// Private libav helpers shared by the media/ sources: RAII owners, opening inputs with
// v2m's error messages, a fault-tolerant decode loop, rotation and time origin.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <functional>
#include <memory>
#include <string>

namespace v2m::media::detail {

struct InputCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct OutputCloser {  // output contexts: close the file (if open) and free
  void operator()(AVFormatContext* p) const;
};
struct CodecCtxFree {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameFree {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwrFree {
  void operator()(SwrContext* p) const { swr_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
using InputPtr = std::unique_ptr<AVFormatContext, InputCloser>;
using OutputPtr = std::unique_ptr<AVFormatContext, OutputCloser>;
using CodecCtxPtr = std::unique_ptr<AVCodecContext, CodecCtxFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwrPtr = std::unique_ptr<SwrContext, SwrFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;

FramePtr make_frame();
PacketPtr make_packet();

// libav error code -> text ("Invalid data found when processing input").
std::string av_error(int err);

// Routes libav's log lines to spdlog (debug), once per process: libav would otherwise print
// to stderr and break the CLI's one-line error contract.
void init_av_logging();

// Checks the path (missing / directory / empty), opens it and reads stream info. Throws
// v2m::Error "<what>: <path>: <why>" for anything that is not a readable media file.
InputPtr open_input(const std::string& path, const std::string& what);

// Best stream of `type` (cover-art pictures are not video); throws "no video stream" etc.
int find_stream(AVFormatContext* fmt, AVMediaType type, const std::string& path, const std::string& what);
// Same, -1 when absent.
int best_stream(AVFormatContext* fmt, AVMediaType type);

// Opens a decoder for a stream; threads 0 = libavcodec's choice.
CodecCtxPtr open_decoder(AVStream* st, const std::string& path, const std::string& what, int threads = 0);

// Clockwise degrees (0/90/180/270) a player turns this stream's frames (display matrix).
int stream_rotation(const AVStream* st);

// The file's time origin in seconds (container start_time, 0 when unknown).
double origin_seconds(const AVFormatContext* fmt);

// Seconds of `ts` in stream time base, relative to the file origin.
double ts_seconds(int64_t ts, AVRational tb, double origin);

// Seeks so decoding starts at or before `seconds` (file time). False when the demuxer cannot.
bool seek_before(AVFormatContext* fmt, int stream, double seconds);

// Stats of a decode_stream run, for error messages.
struct DecodeStats {
  int64_t frames = 0;
  int64_t packets = 0;
  int64_t failed_packets = 0;  // packets the decoder rejected (corrupt data)
  bool read_error = false;     // the demuxer stopped on an error (truncated file)
};

// Reads packets of `stream` and decodes them, calling on_frame for each frame in
// presentation order; on_frame returns false to stop early. Corrupt packets and read errors
// end in fewer frames, never in an exception: the callers decide what "too few" means.
DecodeStats decode_stream(AVFormatContext* fmt, AVCodecContext* dec, int stream,
                          const std::function<bool(AVFrame*)>& on_frame);

// Sends `frame` (nullptr: flush) to an encoder and writes every packet it returns to `st`
// of `oc` (interleaved). Throws "<what>: <path>: <libav error>".
void encode_and_write(AVCodecContext* enc, const AVFrame* frame, AVFormatContext* oc, AVStream* st,
                      const std::string& what, const std::string& path);

// Copies the display matrix (rotation) of `in` to `out` (a stream being muxed).
void copy_display_matrix(const AVStream* in, AVStream* out);

// Throws unless 0 < w, h <= kMaxFrameSide.
void check_frame_size(int w, int h, const std::string& path, const std::string& what);

}  // namespace v2m::media::detail
