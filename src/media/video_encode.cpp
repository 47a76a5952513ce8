// encode_video(): painted RGB frames -> swscale yuv420p -> libx264/mpeg4, plus AAC audio,
// interleaved by time into one container written atomically.
#include "v2m/video_encode.h"

extern "C" {
#include <libavutil/opt.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>

#include "media/audio_util.h"
#include "media/av_util.h"
#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::media {

using namespace detail;

namespace {

bool supports_rate(const AVCodec* c, int rate) {
  if (!c->supported_samplerates) return true;
  for (const int* r = c->supported_samplerates; *r; ++r)
    if (*r == rate) return true;
  return false;
}

}  // namespace

std::string default_video_encoder() {
  return avcodec_find_encoder_by_name("libx264") ? "libx264" : "mpeg4";
}

void encode_video(const std::string& path, const VideoEncodeOptions& o, const FramePainter& paint, const Audio* audio_in) {
  const std::string what = "cannot encode video";
  init_av_logging();
  check_frame_size(o.width, o.height, path, what);
  if (o.width % 2 || o.height % 2)
    throw Error(describe(what, path, "yuv420p needs even width and height, got " + std::to_string(o.width) + "x" +
                                         std::to_string(o.height)));
  if (!(o.fps > 0 && o.fps <= 1000)) throw Error(describe(what, path, "fps must be in (0, 1000]"));
  if (o.frames < 1) throw Error(describe(what, path, "no frames to encode"));
  if (!paint) throw Error(describe(what, path, "no frame painter"));
  const AVOutputFormat* ofmt = av_guess_format(nullptr, path.c_str(), nullptr);
  const std::string oname = ofmt ? ofmt->name : "";
  if (oname != "mp4" && oname != "mov" && oname != "matroska")
    throw Error(describe(what, path, "unsupported container (use .mp4, .mov or .mkv)"));
  const std::string vname = o.codec == "auto" ? default_video_encoder() : o.codec;
  const AVCodec* vcodec = avcodec_find_encoder_by_name(vname.c_str());
  if (!vcodec || vcodec->type != AVMEDIA_TYPE_VIDEO)
    throw Error(describe(what, path, "libavcodec has no video encoder '" + vname + "'"));

  const bool with_audio = audio_in && audio_in->frames() > 0;
  Audio resampled;
  const Audio* audio = audio_in;
  const AVCodec* aac = nullptr;
  if (with_audio) {
    check_audio_buffer(*audio_in, what, path);
    if (audio_in->channels > 8) throw Error(describe(what, path, "AAC holds at most 8 channels"));
    aac = avcodec_find_encoder_by_name("aac");
    if (!aac) throw Error(describe(what, path, "libavcodec has no native aac encoder"));
    if (!supports_rate(aac, audio_in->sample_rate)) {
      resampled = resample(*audio_in, 48000, audio_in->channels);
      audio = &resampled;
    }
  }

  atomic_write(path, [&](const std::string& tmp) {
    AVFormatContext* raw = nullptr;
    int r = avformat_alloc_output_context2(&raw, ofmt, nullptr, tmp.c_str());
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    OutputPtr oc(raw);

    // Video encoder: constant frame rate, time base 1/fps (rational approximation).
    const AVRational rate = av_d2q(o.fps, 100000);
    CodecCtxPtr venc(avcodec_alloc_context3(vcodec));
    if (!venc) throw Error("out of memory: avcodec_alloc_context3");
    venc->width = o.width;
    venc->height = o.height;
    venc->pix_fmt = AV_PIX_FMT_YUV420P;
    venc->time_base = av_inv_q(rate);
    venc->framerate = rate;
    venc->gop_size = std::max(1, o.gop);
    venc->thread_count = 1;  // many clips are encoded in parallel by callers, one thread each
    if (vname == "libx264") {
      av_opt_set(venc->priv_data, "preset", "veryfast", 0);
      av_opt_set(venc->priv_data, "crf", std::to_string(o.crf).c_str(), 0);
    } else {
      // mpeg4 & co: fixed quantiser; crf 0..51 mapped onto qscale 2..31.
      venc->flags |= AV_CODEC_FLAG_QSCALE;
      venc->global_quality = FF_QP2LAMBDA * std::clamp(2 + o.crf * 29 / 51, 2, 31);
    }
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    r = avcodec_open2(venc.get(), vcodec, nullptr);
    if (r < 0) throw Error(describe(what, path, "cannot open " + vname + " encoder: " + av_error(r)));
    AVStream* vst = avformat_new_stream(oc.get(), nullptr);
    if (!vst) throw Error("out of memory: avformat_new_stream");
    avcodec_parameters_from_context(vst->codecpar, venc.get());
    vst->time_base = venc->time_base;
    vst->avg_frame_rate = rate;

    CodecCtxPtr aenc;
    AVStream* ast = nullptr;
    if (with_audio) {
      aenc.reset(avcodec_alloc_context3(aac));
      if (!aenc) throw Error("out of memory: avcodec_alloc_context3");
      aenc->sample_fmt = AV_SAMPLE_FMT_FLTP;
      aenc->sample_rate = audio->sample_rate;
      av_channel_layout_default(&aenc->ch_layout, audio->channels);
      aenc->bit_rate = o.audio_bit_rate;
      aenc->time_base = AVRational{1, audio->sample_rate};
      if (oc->oformat->flags & AVFMT_GLOBALHEADER) aenc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
      r = avcodec_open2(aenc.get(), aac, nullptr);
      if (r < 0) throw Error(describe(what, path, "cannot open aac encoder: " + av_error(r)));
      ast = avformat_new_stream(oc.get(), nullptr);
      if (!ast) throw Error("out of memory: avformat_new_stream");
      avcodec_parameters_from_context(ast->codecpar, aenc.get());
      ast->time_base = aenc->time_base;
    }

    r = avio_open(&oc->pb, ("file:" + tmp).c_str(), AVIO_FLAG_WRITE);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    AVDictionary* mopts = nullptr;
    if (oname != "matroska") av_dict_set(&mopts, "movflags", "+faststart", 0);
    r = avformat_write_header(oc.get(), &mopts);
    av_dict_free(&mopts);
    if (r < 0) throw Error(describe(what, path, av_error(r)));

    // Audio: fixed-size frames, trimmed to the video's length.
    FramePtr af;
    int64_t apos = 0, aend = 0;
    int afs = 1024;
    if (with_audio) {
      afs = aenc->frame_size > 0 ? aenc->frame_size : 1024;
      af = make_frame();
      af->format = AV_SAMPLE_FMT_FLTP;
      av_channel_layout_copy(&af->ch_layout, &aenc->ch_layout);
      af->sample_rate = audio->sample_rate;
      af->nb_samples = afs;
      r = av_frame_get_buffer(af.get(), 0);
      if (r < 0) throw Error(describe(what, path, av_error(r)));
      const double video_len = static_cast<double>(o.frames) / o.fps;
      aend = std::min(audio->frames(), static_cast<int64_t>(std::llround(video_len * audio->sample_rate)));
    }
    auto audio_until = [&](double seconds) {
      if (!with_audio) return;
      const int64_t until = std::min(aend, static_cast<int64_t>(std::floor(seconds * audio->sample_rate)));
      while (apos < until && (apos + afs <= until || until == aend)) {
        const int len = static_cast<int>(std::min<int64_t>(afs, aend - apos));
        r = av_frame_make_writable(af.get());
        if (r < 0) throw Error(describe(what, path, av_error(r)));
        for (int c = 0; c < audio->channels; ++c)
          std::memcpy(af->data[c], audio->channel(c) + apos, static_cast<size_t>(len) * sizeof(float));
        af->nb_samples = len;
        af->pts = apos;
        encode_and_write(aenc.get(), af.get(), oc.get(), ast, what, path);
        apos += len;
      }
    };

    FramePtr vf = make_frame();
    vf->format = AV_PIX_FMT_YUV420P;
    vf->width = o.width;
    vf->height = o.height;
    r = av_frame_get_buffer(vf.get(), 0);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    SwsPtr sws(sws_getContext(o.width, o.height, AV_PIX_FMT_RGB24, o.width, o.height, AV_PIX_FMT_YUV420P,
                              SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
    if (!sws) throw Error(describe(what, path, "cannot create the RGB -> yuv420p converter"));
    cv::Mat rgb(o.height, o.width, CV_8UC3, cv::Scalar(0, 0, 0));
    for (int i = 0; i < o.frames; ++i) {
      paint(i, rgb);
      if (rgb.rows != o.height || rgb.cols != o.width || rgb.type() != CV_8UC3 || !rgb.isContinuous())
        throw Error(describe(what, path, "the painter changed the frame's size or type"));
      audio_until(static_cast<double>(i) / o.fps);
      r = av_frame_make_writable(vf.get());
      if (r < 0) throw Error(describe(what, path, av_error(r)));
      const uint8_t* src[1] = {rgb.data};
      const int stride[1] = {static_cast<int>(rgb.step)};
      sws_scale(sws.get(), src, stride, 0, o.height, vf->data, vf->linesize);
      vf->pts = i;
      encode_and_write(venc.get(), vf.get(), oc.get(), vst, what, path);
    }
    encode_and_write(venc.get(), nullptr, oc.get(), vst, what, path);
    if (with_audio) {
      audio_until(static_cast<double>(o.frames) / o.fps + 1.0);
      encode_and_write(aenc.get(), nullptr, oc.get(), ast, what, path);
    }
    r = av_write_trailer(oc.get());
    if (r < 0) throw Error(describe(what, path, av_error(r)));
    r = avio_closep(&oc->pb);
    if (r < 0) throw Error(describe(what, path, av_error(r)));
  });
}

}  // namespace v2m::media
