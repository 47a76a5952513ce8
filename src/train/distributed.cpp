#include "train/distributed.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>

#include "v2m/error.h"

namespace v2m::train {

namespace {

bool env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end || x < 0 || x > 1 << 20) throw Error(std::string("environment: ") + name + "='" + v + "' is not a valid number");
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

DistOptions dist_options_from_env() {
  DistOptions o;
  const bool torchrun = env_int("WORLD_SIZE", &o.world_size);
  if (torchrun) {
    if (!env_int("RANK", &o.rank)) throw Error("environment: WORLD_SIZE is set but RANK is not");
    if (!env_int("LOCAL_RANK", &o.local_rank)) o.local_rank = o.rank;
  } else if (env_int("SLURM_NTASKS", &o.world_size)) {
    env_int("SLURM_PROCID", &o.rank);
    env_int("SLURM_LOCALID", &o.local_rank);
  }
  if (o.world_size < 1) throw Error("environment: WORLD_SIZE must be >= 1");
  if (o.rank >= o.world_size)
    throw Error("environment: RANK " + std::to_string(o.rank) + " >= WORLD_SIZE " + std::to_string(o.world_size));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  int port = 0;
  if (env_int("MASTER_PORT", &port)) {
    if (port < 1 || port > 65535) throw Error("environment: MASTER_PORT out of range");
    o.master_port = port;
  }
  if (o.world_size > 1 && !std::getenv("MASTER_ADDR"))
    throw Error("environment: WORLD_SIZE > 1 but MASTER_ADDR is not set (torchrun sets it; under Slurm export it)");
  return o;
}

struct Dist::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  at::Device device{at::kCPU};
};

Dist::Dist(const DistOptions& opts, const at::Device& device) : opts_(opts), impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  if (opts.world_size <= 1) return;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(opts.timeout_s * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(opts.master_port);
    so.isServer = opts.rank == 0;
    so.numWorkers = opts.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(opts.master_addr, so);
    if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
      auto no = c10::make_intrusive<c10d::ProcessGroupNCCL::Options>();
      no->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, opts.rank, opts.world_size, no);
#else
      throw Error("distributed: CUDA training across ranks needs a LibTorch built with NCCL");
#endif
    } else {
      auto go = c10d::ProcessGroupGloo::Options::create();
      go->timeout = timeout;
      // Loopback rendezvous binds loopback; otherwise the interface named by
      // GLOO_SOCKET_IFNAME, or the one the host name resolves to (as torch.distributed does).
      const bool local = opts.master_addr == "127.0.0.1" || opts.master_addr == "localhost";
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (local)
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, opts.rank, opts.world_size, go);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("distributed: rank " + std::to_string(opts.rank) + " could not join the process group at " +
                opts.master_addr + ":" + std::to_string(opts.master_port) + ": " + e.what());
  }
  spdlog::info("distributed: rank {}/{} joined via {}:{} ({})", opts.rank, opts.world_size, opts.master_addr,
               opts.master_port, device.is_cuda() ? "nccl" : "gloo");
}

Dist::~Dist() = default;

namespace {

[[noreturn]] void collective_failed(int rank, const char* what, const std::exception& e) {
  throw Error(std::string("distributed: rank ") + std::to_string(rank) + ": " + what +
              " failed (another rank probably died or timed out): " + e.what());
}

}  // namespace

void Dist::all_reduce_sum(const std::vector<at::Tensor>& tensors, size_t bucket_bytes) {
  if (opts_.world_size <= 1 || tensors.empty()) return;
  try {
    size_t i = 0;
    while (i < tensors.size()) {
      // One bucket: consecutive tensors of one dtype up to bucket_bytes (at least one).
      size_t j = i, bytes = 0;
      while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
             (j == i || bytes + tensors[j].nbytes() <= bucket_bytes)) {
        bytes += tensors[j].nbytes();
        ++j;
      }
      std::vector<at::Tensor> flat_parts;
      for (size_t k = i; k < j; ++k) flat_parts.push_back(tensors[k].reshape({-1}));
      std::vector<at::Tensor> flat{at::cat(flat_parts)};
      impl_->pg->allreduce(flat)->wait();
      int64_t off = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = tensors[k].numel();
        tensors[k].copy_(flat[0].slice(0, off, off + n).view_as(tensors[k]));
        off += n;
      }
      i = j;
    }
  } catch (const std::exception& e) {
    collective_failed(opts_.rank, "gradient all-reduce", e);
  }
}

void Dist::all_reduce_max(at::Tensor& t) {
  if (opts_.world_size <= 1) return;
  try {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    impl_->pg->allreduce(v, o)->wait();
  } catch (const std::exception& e) {
    collective_failed(opts_.rank, "all-reduce", e);
  }
}

void Dist::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  if (opts_.world_size <= 1) return;
  try {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (const auto& t : tensors) {
      std::vector<at::Tensor> v{t};
      impl_->pg->broadcast(v, o)->wait();
    }
  } catch (const std::exception& e) {
    collective_failed(opts_.rank, "broadcast", e);
  }
}

void Dist::barrier() {
  if (opts_.world_size <= 1) return;
  try {
    impl_->pg->barrier()->wait();
  } catch (const std::exception& e) {
    collective_failed(opts_.rank, "barrier", e);
  }
}

}  // namespace v2m::train
