// `v2m train --nproc N`: runs N local worker processes of this executable with the
// environment torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port), forwards SIGINT/SIGTERM to them, and
// when one fails stops the others (SIGTERM, then SIGKILL after grace_s) so nothing hangs.
#pragma once

#include <string>
#include <vector>

namespace v2m::train {

// args: the full argument vector for each worker (argv[0] included; executable is
// /proc/self/exe). Returns 0 when every worker succeeded, else the first failure's code.
int launch_local_workers(int nproc, const std::vector<std::string>& args, double grace_s = 10.0);

}  // namespace v2m::train
