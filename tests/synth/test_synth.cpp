// SynthV2M: score composition, FluidSynth rendering, scene drawing, the video encoder and
// `v2m synth` end to end. Every input is built here; sizes are tiny.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include <cmath>
#include <numeric>
#include <set>

#include "data/manifest.h"
#include "eval/alignment.h"
#include "synth/dataset.h"
#include "synth/render.h"
#include "synth/scene.h"
#include "synth/score.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"
#include "v2m/video_encode.h"

using namespace v2m;
using namespace v2m::synth;

namespace {

bool have_soundfont() {
  try {
    find_soundfont();
    return true;
  } catch (const Error&) {
    return false;
  }
}

ClipParams fixed_params(double bpm, bool minor, double seconds) {
  ClipParams p = sample_clip_params(7, 3, seconds);
  p.bpm = bpm;
  p.minor = minor;
  return p;
}

// Onset strength per 10 ms frame: half-wave rectified rise of log frame energy.
std::vector<double> onset_envelope(const media::Audio& a, int hop) {
  std::vector<double> loge;
  for (int64_t s = 0; s + hop <= a.frames(); s += hop) {
    double e = 0;
    for (int i = 0; i < hop; ++i) e += static_cast<double>(a.samples[s + i]) * a.samples[s + i];
    loge.push_back(std::log(e / hop + 1e-10));
  }
  std::vector<double> env(loge.size(), 0.0);
  for (size_t i = 1; i < loge.size(); ++i) env[i] = std::max(0.0, loge[i] - loge[i - 1]);
  return env;
}

}  // namespace

TEST(SynthScore, SameSeedSameScoreOtherSeedOtherScore) {
  const Score a = compose(sample_clip_params(11, 5, 6.0)), b = compose(sample_clip_params(11, 5, 6.0));
  ASSERT_EQ(a.notes.size(), b.notes.size());
  for (size_t i = 0; i < a.notes.size(); ++i) {
    EXPECT_DOUBLE_EQ(a.notes[i].time, b.notes[i].time);
    EXPECT_EQ(a.notes[i].key, b.notes[i].key);
    EXPECT_EQ(a.notes[i].velocity, b.notes[i].velocity);
  }
  EXPECT_EQ(score_labels(a).dump(), score_labels(b).dump());
  // Other clips of the same dataset, and the same clip of another dataset, differ.
  const Score c = compose(sample_clip_params(11, 6, 6.0)), d = compose(sample_clip_params(12, 5, 6.0));
  EXPECT_NE(score_labels(a).dump(), score_labels(c).dump());
  EXPECT_NE(score_labels(a).dump(), score_labels(d).dump());
}

TEST(SynthScore, ParametersCoverTheirRanges) {
  std::set<int> keys, families;
  std::set<bool> modes;
  for (uint64_t i = 0; i < 200; ++i) {
    const ClipParams p = sample_clip_params(3, i, 4.0);
    EXPECT_GE(p.bpm, 70.0);
    EXPECT_LE(p.bpm, 160.0);
    const auto& fam = instrument_families().at(static_cast<size_t>(p.family));
    EXPECT_NE(std::find(fam.programs.begin(), fam.programs.end(), p.program), fam.programs.end());
    keys.insert(p.key_pc), families.insert(p.family), modes.insert(p.minor);
  }
  EXPECT_EQ(keys.size(), 12u);
  EXPECT_EQ(families.size(), instrument_families().size());
  EXPECT_EQ(modes.size(), 2u);
}

TEST(SynthScore, FixedTonicChangesTheKeyAndNothingElse) {
  EXPECT_EQ(key_pitch_class("C"), 0);
  EXPECT_EQ(key_pitch_class("f#"), 6);
  EXPECT_EQ(key_pitch_class("B"), 11);
  EXPECT_EQ(key_pitch_class("H"), -1);
  EXPECT_EQ(key_pitch_class("C#m"), -1);
  EXPECT_EQ(key_pitch_class(""), -1);
  std::set<int> drawn;
  for (uint64_t i = 0; i < 40; ++i) {
    const ClipParams a = sample_clip_params(4, i, 6.0), b = sample_clip_params(4, i, 6.0, 9);
    drawn.insert(a.key_pc);
    EXPECT_EQ(b.key_pc, 9);
    EXPECT_EQ(a.bpm, b.bpm);
    EXPECT_EQ(a.minor, b.minor);
    EXPECT_EQ(a.program, b.program);
    EXPECT_EQ(a.loudness, b.loudness);
    EXPECT_EQ(a.progression, b.progression);
    EXPECT_EQ(a.seed, b.seed);
    const Score s = compose(b);
    EXPECT_EQ(score_labels(s).at("key").get<std::string>(), "A");
    // The first bass note is the tonic (every progression opens on I).
    int first = -1;
    for (const auto& e : s.notes)
      if (e.channel == kBassChannel) {
        first = e.key % 12;
        break;
      }
    EXPECT_EQ(first, 9);
  }
  EXPECT_GT(drawn.size(), 6u);  // without a tonic the keys vary
}

TEST(SynthScore, LabelsBeatsAndCutsFollowTempoAndBars) {
  for (uint64_t i = 0; i < 20; ++i) {
    const Score s = compose(sample_clip_params(21, i, 7.0));
    const nlohmann::json j = score_labels(s);
    const double bpm = j.at("bpm").get<double>(), beat = 60.0 / bpm;
    EXPECT_EQ(j.at("key").get<std::string>(), key_name(j.at("key_pc").get<int>()));
    EXPECT_TRUE(j.at("mode") == "major" || j.at("mode") == "minor");
    EXPECT_TRUE(j.at("program").is_number_integer());
    EXPECT_TRUE(j.at("family").is_string());
    const auto beats = j.at("beats").get<std::vector<double>>();
    const auto cuts = j.at("cuts").get<std::vector<double>>();
    ASSERT_EQ(beats.size(), static_cast<size_t>(std::ceil(7.0 / beat)));
    EXPECT_DOUBLE_EQ(beats[0], 0.0);
    for (size_t k = 1; k < beats.size(); ++k) EXPECT_NEAR(beats[k] - beats[k - 1], beat, 1e-9);
    ASSERT_FALSE(cuts.empty());
    for (size_t k = 0; k < cuts.size(); ++k) EXPECT_NEAR(cuts[k], 4.0 * beat * static_cast<double>(k + 1), 1e-9);
    EXPECT_LT(cuts.back(), 7.0);
    // Every note starts inside the clip; drums hit every beat.
    int kicks_snares = 0;
    for (const auto& n : s.notes) {
      EXPECT_GE(n.time, 0.0);
      EXPECT_LT(n.time, 7.0);
      if (n.channel == kDrumChannel && (n.key == 36 || n.key == 38)) ++kicks_snares;
    }
    EXPECT_EQ(kicks_snares, static_cast<int>(beats.size()));
  }
}

// The mode is in the notes, not only in the label: a duration-weighted pitch-class histogram
// of every pitched note correlates best with a Krumhansl-Kessler profile of the clip's mode
// (the estimator `v2m eval` runs on chroma) and names the clip's tonic, for clips as short
// as two bars. Natural minor shares its pitch classes with the relative major; the tonic-first
// progressions and the harmonic-minor dominant are what set the two apart.
TEST(SynthScore, PitchContentStatesTheModeAndTonic) {
  int mode_hits = 0, tonic_hits = 0, n = 0;
  for (uint64_t i = 0; i < 96; ++i) {
    ClipParams p = sample_clip_params(11, i, 8.0);
    p.minor = i % 2 == 1;  // both modes for every tempo and progression drawn
    const Score s = compose(p);
    at::Tensor hist = at::zeros({12}, at::kDouble);
    for (const auto& e : s.notes)
      if (e.channel != kDrumChannel) hist[e.key % 12] += e.duration;
    const auto k = eval::estimate_key(hist);
    mode_hits += k.major == !p.minor;
    tonic_hits += k.tonic == p.key_pc;
    ++n;
  }
  EXPECT_GE(mode_hits, n * 95 / 100) << mode_hits << " of " << n;
  EXPECT_GE(tonic_hits, n * 90 / 100) << tonic_hits << " of " << n;
}

TEST(SynthRender, AudioIsLoudEnoughAndPulsesOnTheBeat) {
  if (!have_soundfont()) GTEST_SKIP() << "no GM soundfont (apt-get install timgm6mb-soundfont)";
  const int sr = 16000, hop = 160;  // 10 ms frames
  const double bpm = 100, beat = 0.6;
  const Score s = compose(fixed_params(bpm, false, 6.0));
  Renderer r(find_soundfont(), sr);
  const media::Audio a = r.render(s);
  ASSERT_EQ(a.frames(), 6 * sr);
  double ss = 0, peak = 0;
  for (float v : a.samples) ss += v * v, peak = std::max(peak, static_cast<double>(std::fabs(v)));
  const double rms_db = 20 * std::log10(std::sqrt(ss / a.frames()));
  EXPECT_NEAR(rms_db, target_rms_db(s.params.loudness), 6.0);  // peak limiting may pull it down a little
  EXPECT_LT(peak, 1.0);
  // Onsets sit on the beats: onset strength at beat frames beats that a quarter beat later
  // (kick/snare on beats, hi-hats on eighths, nothing on sixteenths).
  const auto env = onset_envelope(a, hop);
  auto strength_at = [&](double offset) {
    double sum = 0;
    int n = 0;
    for (double t : s.beats) {
      const int f = static_cast<int>(std::lround((t + offset) / 0.01));
      for (int d = 0; d <= 3; ++d)
        if (f + d < static_cast<int>(env.size())) sum += env[f + d], ++n;
    }
    return sum / std::max(n, 1);
  };
  EXPECT_GT(strength_at(0.0), 2.0 * strength_at(beat / 4));
  // Dominant periodicity in 0.35..1.0 s is the beat period.
  const double mean = std::accumulate(env.begin(), env.end(), 0.0) / env.size();
  int best_lag = 0;
  double best = -1e30;
  for (int lag = 35; lag <= 100; ++lag) {
    double acf = 0;
    for (size_t i = 0; i + lag < env.size(); ++i) acf += (env[i] - mean) * (env[i + lag] - mean);
    if (acf > best) best = acf, best_lag = lag;
  }
  EXPECT_NEAR(best_lag * 0.01, beat, 0.04);
  // Same score, same samples.
  const media::Audio b = r.render(s);
  EXPECT_EQ(a.samples, b.samples);
}

TEST(SynthRender, MissingSoundfontNamesFileAndPackage) {
  try {
    find_soundfont("/nonexistent/none.sf2");
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/none.sf2"), std::string::npos);
  }
}

TEST(SynthScene, PaletteIsWarmForMajorAndCoolForMinor) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    for (bool minor : {false, true}) {
      ClipParams p = sample_clip_params(seed, 0, 4.0);
      p.minor = minor;
      const Score s = compose(p);
      cv::Mat rgb(64, 64, CV_8UC3);
      for (double t : {0.1, 1.3, 2.9}) {
        paint_scene(s, t, rgb);
        const cv::Scalar m = cv::mean(rgb);  // R, G, B
        if (minor)
          EXPECT_GT(m[2], m[0] + 10) << "seed " << seed << " t " << t;
        else
          EXPECT_GT(m[0], m[2] + 10) << "seed " << seed << " t " << t;
      }
    }
  }
}

TEST(SynthScene, CutsChangeTheSceneObjectsMoveAndBrightnessFollowsLoudness) {
  ClipParams p = sample_clip_params(5, 1, 6.0);
  p.bpm = 120;  // bar = 2 s
  const Score s = compose(p);
  ASSERT_NEAR(s.cuts.at(0), 2.0, 1e-9);
  cv::Mat a(64, 64, CV_8UC3), b(64, 64, CV_8UC3), c(64, 64, CV_8UC3);
  paint_scene(s, 1.95, a);
  paint_scene(s, 2.0, b);
  paint_scene(s, 1.70, c);
  EXPECT_EQ(scene_index(s, 1.95), 0);
  EXPECT_EQ(scene_index(s, 2.0), 1);
  const double across_cut = cv::norm(a, b, cv::NORM_L1) / a.total(), within = cv::norm(a, c, cv::NORM_L1) / a.total();
  EXPECT_GT(within, 0.0);  // objects move within a scene
  EXPECT_GT(across_cut, 2 * within);
  ClipParams quiet = p, loud = p;
  quiet.loudness = 0.2, loud.loudness = 1.0;
  cv::Mat q(64, 64, CV_8UC3), l(64, 64, CV_8UC3);
  paint_scene(compose(quiet), 0.3, q);
  paint_scene(compose(loud), 0.3, l);
  EXPECT_GT(cv::sum(l)[0] + cv::sum(l)[1] + cv::sum(l)[2], 1.5 * (cv::sum(q)[0] + cv::sum(q)[1] + cv::sum(q)[2]));
}

TEST(VideoEncode, WritesDecodableVideoWithSoundtrack) {
  TempDir dir;
  const std::string path = dir.path() + "/v.mp4";
  media::VideoEncodeOptions o;
  o.width = 48, o.height = 32, o.fps = 10, o.frames = 20;
  media::Audio tone;
  tone.sample_rate = 16000, tone.channels = 1;
  for (int i = 0; i < 16000 * 2; ++i) tone.samples.push_back(0.3f * std::sin(2 * M_PI * 440.0 * i / 16000.0));
  media::encode_video(path, o, [](int k, cv::Mat& rgb) { rgb.setTo(cv::Scalar(10 * k, 100, 200)); }, &tone);
  const auto info = media::probe(path);
  ASSERT_NE(info.video(), nullptr);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_EQ(info.video()->width, 48);
  EXPECT_EQ(info.video()->height, 32);
  EXPECT_EQ(info.video()->codec, media::default_video_encoder() == "libx264" ? "h264" : "mpeg4");
  EXPECT_EQ(info.audio()->codec, "aac");
  media::VideoDecodeOptions d;
  d.fps = 0;
  const auto frames = media::decode_video(path, d);
  ASSERT_EQ(frames.count, 20);
  const cv::Mat f5(32, 48, CV_8UC3, const_cast<uint8_t*>(frames.frame(5)));
  const cv::Scalar m = cv::mean(f5);
  EXPECT_NEAR(m[0], 50, 6);
  EXPECT_NEAR(m[1], 100, 6);
  EXPECT_NEAR(m[2], 200, 6);
  const auto audio = media::decode_audio(path, 16000, 1);
  EXPECT_NEAR(static_cast<double>(audio.frames()) / 16000, 2.0, 0.1);
  // Odd sizes are refused before anything is written.
  o.width = 47;
  EXPECT_THROW(media::encode_video(dir.path() + "/odd.mp4", o, [](int, cv::Mat&) {}), Error);
  EXPECT_FALSE(file_exists(dir.path() + "/odd.mp4"));
}

TEST(SynthCli, GeneratesProbeableClipsAndAManifest) {
  if (!have_soundfont()) GTEST_SKIP() << "no GM soundfont (apt-get install timgm6mb-soundfont)";
  if (std::string(V2M_CLI_PATH).empty() || !file_exists(V2M_CLI_PATH)) GTEST_SKIP() << "v2m CLI not built";
  TempDir dir;
  std::string out;
  const std::string cmd = std::string("'") + V2M_CLI_PATH + "' -q synth -o '" + dir.path() +
                          "/ds' --clips 2 --seconds 2 --seed 9 --size 64 --fps 8";
  ASSERT_EQ(run_capture(cmd, &out), 0) << out;
  const auto m = data::read_manifest(dir.path() + "/ds/manifest.jsonl");
  ASSERT_EQ(m.clips.size(), 2u);
  for (const auto& c : m.clips) {
    const auto info = media::probe(c.video_path);
    ASSERT_NE(info.video(), nullptr);
    ASSERT_NE(info.audio(), nullptr);
    EXPECT_EQ(info.video()->width, 64);
    EXPECT_NEAR(info.duration, 2.0, 0.15);
    const auto wav = media::read_wav(c.audio_path);
    EXPECT_EQ(wav.sample_rate, 16000);
    EXPECT_EQ(wav.frames(), 32000);
    for (const char* k : {"bpm", "key", "key_pc", "mode", "program", "family", "beats", "cuts"})
      EXPECT_TRUE(c.labels.contains(k)) << k;
    EXPECT_EQ(c.labels.size(), 8u);
  }
  // Same seed, same dataset (and missing parent directories are created).
  ASSERT_EQ(run_capture(std::string("'") + V2M_CLI_PATH + "' -q synth -o '" + dir.path() +
                            "/nested/ds2' --clips 2 --seconds 2 --seed 9 --size 64 --fps 8",
                        &out),
            0)
      << out;
  EXPECT_EQ(read_text(dir.path() + "/ds/manifest.jsonl"), read_text(dir.path() + "/nested/ds2/manifest.jsonl"));
  EXPECT_EQ(read_text(dir.path() + "/ds/clips/synth_00001.wav"), read_text(dir.path() + "/nested/ds2/clips/synth_00001.wav"));
  // --tonic puts every clip in one key.
  ASSERT_EQ(run_capture(std::string("'") + V2M_CLI_PATH + "' -q synth -o '" + dir.path() +
                            "/dsd' --clips 2 --seconds 2 --seed 9 --size 64 --fps 8 --tonic d",
                        &out),
            0)
      << out;
  for (const auto& c : data::read_manifest(dir.path() + "/dsd/manifest.jsonl").clips) {
    EXPECT_EQ(c.labels.at("key").get<std::string>(), "D");
    EXPECT_EQ(c.labels.at("key_pc").get<int>(), 2);
  }
  // A bad option fails with one line and writes no manifest.
  ASSERT_NE(run_capture(std::string("'") + V2M_CLI_PATH + "' synth -o '" + dir.path() + "/bad' --size 63", &out), 0);
  EXPECT_FALSE(file_exists(dir.path() + "/bad/manifest.jsonl"));
  ASSERT_NE(run_capture(std::string("'") + V2M_CLI_PATH + "' synth -o '" + dir.path() + "/bad' --tonic Cb", &out), 0);
  EXPECT_NE(out.find("--tonic"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(dir.path() + "/bad/manifest.jsonl"));
}
