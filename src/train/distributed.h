// Data parallelism on torch.distributed's c10d (design.md 3.5): ProcessGroupGloo on CPU,
// ProcessGroupNCCL on CUDA (when LibTorch has it), rendezvous through a TCPStore at
// MASTER_ADDR:MASTER_PORT as torchrun and Slurm set it. c10d stays out of this header.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

namespace v2m::train {

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 300;  // rendezvous and every collective
};

// RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (torchrun, `v2m train --nproc`),
// falling back to SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID under srun. Unset: one process.
// Malformed values throw v2m::Error naming the variable.
DistOptions dist_options_from_env();

class Dist {
 public:
  // world_size 1: no process group, every collective is a no-op.
  Dist(const DistOptions& opts, const at::Device& device);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  int rank() const { return opts_.rank; }
  int world_size() const { return opts_.world_size; }
  bool is_main() const { return opts_.rank == 0; }

  // Sums tensors across ranks in place, packed into flat buckets of at most bucket_bytes
  // (one collective per bucket instead of one per parameter).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors, size_t bucket_bytes = 25u << 20);
  void all_reduce_max(at::Tensor& t);
  // Copies rank `root`'s values into every rank's tensors.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void barrier();

 private:
  struct Impl;
  DistOptions opts_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace v2m::train
