// AV-Align (Yariv et al., "Diverse and Aligned Audio-to-Video Generation via Text-to-Video
// Model Adaptation", AAAI 2024, sec. 4 and their reference script): an IoU between audio
// onset peaks and peaks of the optical-flow magnitude trajectory of the video.
//   video: mean flow magnitude between consecutive frames (the first pair counted twice so
//          index i is frame i), local maxima (strictly above both neighbours) >= 0.1 px,
//          at time i / fps;
//   audio: librosa onset_detect times (eval/onsets.h);
//   hit:   an audio peak with some video peak within (v - 1/fps, v + 1/fps);
//   score: hits / (|video peaks| + |audio peaks| - hits).
// Flow is OpenCV DIS (media::DisFlow) instead of Farneback: v2m's one flow estimator.
#pragma once

#include <string>
#include <vector>

namespace v2m::eval {

struct AvAlign {
  double score = 0;  // NaN when there are no peaks at all (undefined)
  int audio_peaks = 0, video_peaks = 0, hits = 0;
};

AvAlign av_align_score(const std::vector<double>& video_peaks, const std::vector<double>& audio_peaks, double fps);

// Peaks of a flow-magnitude trajectory sampled at `fps`, in seconds.
std::vector<double> trajectory_peaks(const std::vector<double>& magnitude, double fps, double threshold = 0.1);

struct FlowTrajectory {
  double fps = 0;
  std::vector<double> magnitude;  // one value per frame
};

// Gray frames of [start, start + duration) at the stream's frame rate (short side scaled
// down to `max_short_side` when larger; 0 = source size), DIS flow between neighbours.
FlowTrajectory flow_trajectory(const std::string& video, double start, double duration, int max_short_side = 256);

}  // namespace v2m::eval
