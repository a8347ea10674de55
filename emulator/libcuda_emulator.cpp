// libcuda_emulator.cpp — a CPU stand-in for the part of libcuda.so.1 that
// ringkernel-ts binds (ffi/libcuda.ts), running the bundle's own device
// sources (cuda/*.cu compiled for the host with rk_emulation.h).
//
// Device memory and mapped pinned memory are host memory, so device pointers
// are host addresses. Streams are worker threads that run their operations in
// order. A launch runs every block of the grid at once, one OS thread each (a
// resident actor pool needs all of its blocks running), and a block's threads
// are fibers that switch only at __syncthreads and at warp collectives.
//
// This checks the device code's protocol against the real host side: queue
// indices, flags, batches, barriers, K2K. It is not a GPU: no PTX runs, the
// memory model is the host's (x86 is stronger than the GPU's), and timings
// mean nothing.
//
// It does model the driver behaviour that hangs a resident design, and
// refuses it (CUDA_ERROR_NOT_PERMITTED, with a message on stderr; see
// `hazard`): calls that wait for the device while a kernel runs (frees,
// allocations, module loads and unloads, context synchronisation and the
// primary context's last release, default-stream work), a kernel's first
// load under lazy module loading (CUDA_MODULE_LOADING, lazy by default as
// since CUDA 12.2), and launches whose blocks would not all be resident on an
// sm_90 device of RINGKERNEL_EMULATOR_SMS multiprocessors (132 by default) or
// that would make a 129th resident grid.
#include "rk_emulation.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

RK_EMU_API thread_local rk_emu_dim3 rk_emu_thread_idx;
RK_EMU_API thread_local rk_emu_dim3 rk_emu_block_idx;
RK_EMU_API thread_local rk_emu_dim3 rk_emu_block_dim;
RK_EMU_API thread_local rk_emu_dim3 rk_emu_grid_dim;
RK_EMU_API thread_local void* rk_emu_dynamic_smem;

typedef int CUresult;
enum : CUresult {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_PTX = 218,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_NOT_READY = 600,
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
  CUDA_ERROR_LAUNCH_FAILED = 719,
  CUDA_ERROR_NOT_PERMITTED = 800,
};

// ---------------------------------------------------------------------------
// Fibers: the threads of one block
// ---------------------------------------------------------------------------

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores its pointer in
// *save, and resumes the stack at `load` (System V x86-64).
asm(R"(
  .text
  .p2align 4
  .hidden rk_emu_switch
  .globl rk_emu_switch
  .type rk_emu_switch, @function
rk_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size rk_emu_switch, .-rk_emu_switch
)");
extern "C" void rk_emu_switch(void** save, void* load);
#else
#error "the CPU emulator's fibers are written for x86-64"
#endif

namespace {

enum class FiberState { Runnable, AtBarrier, AtWarp, Done };

struct Fiber {
  void* sp = nullptr;
  FiberState state = FiberState::Runnable;
  rk_emu_dim3 tid{0, 0, 0};
  unsigned long long warp_value = 0;
  unsigned long long* warp_lanes = nullptr;
};

constexpr size_t kFiberStack = 256 * 1024;
constexpr size_t kGuard = 4096;

struct BlockRun {
  const rk_emu_kernel* kernel = nullptr;
  void* params = nullptr;
  std::vector<Fiber> fibers;
  size_t current = 0;
  void* scheduler_sp = nullptr;
  bool slept_this_pass = false;
};

thread_local BlockRun* current_block = nullptr;

/** While the emulated NVRTC loads a module it compiled: the kernels it registers. */
thread_local std::set<std::string>* loading_module_kernels = nullptr;

[[noreturn]] void fiber_main() {
  BlockRun* b = current_block;
  b->kernel->run(b->params);
  Fiber& f = b->fibers[b->current];
  f.state = FiberState::Done;
  rk_emu_switch(&f.sp, b->scheduler_sp);
  __builtin_unreachable();
}

void yield_fiber(FiberState state) {
  BlockRun* b = current_block;
  Fiber& f = b->fibers[b->current];
  f.state = state;
  rk_emu_switch(&f.sp, b->scheduler_sp);
}

/** Order in which a block's runnable fibers run between barriers (RINGKERNEL_EMULATOR_ORDER). */
enum class FiberOrder { Forward, Reverse, Shuffle };

/**
 * CUDA promises no order between a block's threads between barriers. Running
 * them in a new random order at every barrier (the default) makes code that
 * forgot a barrier fail here instead of on the GPU; `forward` and `reverse`
 * are fixed orders for reproducing a failure.
 */
FiberOrder fiber_order() {
  static const FiberOrder order = [] {
    const char* v = getenv("RINGKERNEL_EMULATOR_ORDER");
    if (v != nullptr && strcmp(v, "forward") == 0) return FiberOrder::Forward;
    if (v != nullptr && strcmp(v, "reverse") == 0) return FiberOrder::Reverse;
    return FiberOrder::Shuffle;
  }();
  return order;
}

/** Runs one block to completion on this OS thread; returns an error text on a barrier deadlock. */
std::string run_block(const rk_emu_kernel* kernel, void* params, rk_emu_dim3 block, rk_emu_dim3 grid,
                      rk_emu_dim3 dim, unsigned int shared_bytes) {
  const size_t threads = static_cast<size_t>(dim.x) * dim.y * dim.z;
  const size_t stride = kFiberStack + kGuard;
  void* region = mmap(nullptr, stride * threads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
  if (region == MAP_FAILED) return "no memory for the block's thread stacks";
  std::vector<unsigned char> shared(shared_bytes + 16, 0);
  BlockRun b;
  b.kernel = kernel;
  b.params = params;
  b.fibers.resize(threads);
  for (size_t t = 0; t < threads; ++t) {
    char* base = static_cast<char*>(region) + t * stride;
    mprotect(base, kGuard, PROT_NONE);  // overflow faults instead of corrupting the next stack
    char* top = base + stride;
    void** sp = reinterpret_cast<void**>(top - 64);
    for (int r = 0; r < 6; ++r) sp[r] = nullptr;  // r15 r14 r13 r12 rbx rbp
    sp[6] = reinterpret_cast<void*>(&fiber_main);
    Fiber& f = b.fibers[t];
    f.sp = sp;
    f.tid = rk_emu_dim3{static_cast<unsigned>(t % dim.x), static_cast<unsigned>((t / dim.x) % dim.y),
                        static_cast<unsigned>(t / (static_cast<size_t>(dim.x) * dim.y))};
  }
  current_block = &b;
  rk_emu_block_idx = block;
  rk_emu_block_dim = dim;
  rk_emu_grid_dim = grid;
  rk_emu_dynamic_smem = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(shared.data()) + 15) & ~uintptr_t(15));
  std::string error;
  std::vector<size_t> order(threads);
  for (size_t t = 0; t < threads; ++t) order[t] = fiber_order() == FiberOrder::Reverse ? threads - 1 - t : t;
  unsigned long long seed = 0x9e3779b97f4a7c15ull ^ (block.x + 1ull) * 0xbf58476d1ce4e5b9ull;
  for (;;) {
    b.slept_this_pass = false;
    if (fiber_order() == FiberOrder::Shuffle) {
      for (size_t i = threads - 1; i > 0; --i) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::swap(order[i], order[seed % (i + 1)]);
      }
    }
    for (const size_t t : order) {
      if (b.fibers[t].state != FiberState::Runnable) continue;
      b.current = t;
      rk_emu_thread_idx = b.fibers[t].tid;
      rk_emu_switch(&b.scheduler_sp, b.fibers[t].sp);
    }
    size_t live = 0, at_barrier = 0;
    bool released = false;
    for (size_t w = 0; w * 32 < threads; ++w) {
      const size_t end = std::min(threads, w * 32 + 32);
      size_t warp_live = 0, warp_waiting = 0;
      for (size_t t = w * 32; t < end; ++t) {
        const FiberState s = b.fibers[t].state;
        if (s == FiberState::Done) continue;
        ++warp_live;
        if (s == FiberState::AtWarp) ++warp_waiting;
        if (s == FiberState::AtBarrier) ++at_barrier;
      }
      live += warp_live;
      if (warp_waiting == 0 || warp_waiting != warp_live) continue;
      unsigned long long lanes[32] = {};
      for (size_t t = w * 32; t < end; ++t) {
        if (b.fibers[t].state == FiberState::AtWarp) lanes[t - w * 32] = b.fibers[t].warp_value;
      }
      for (size_t t = w * 32; t < end; ++t) {
        Fiber& f = b.fibers[t];
        if (f.state != FiberState::AtWarp) continue;
        memcpy(f.warp_lanes, lanes, sizeof lanes);
        f.state = FiberState::Runnable;
      }
      released = true;
    }
    if (live == 0) break;
    if (released) continue;
    if (at_barrier == live) {
      for (Fiber& f : b.fibers) {
        if (f.state == FiberState::AtBarrier) f.state = FiberState::Runnable;
      }
      continue;
    }
    error = "threads of block " + std::to_string(block.x) +
            " wait at different barriers (a warp collective and __syncthreads): the kernel diverged";
    break;
  }
  current_block = nullptr;
  munmap(region, stride * threads);
  return error;
}

// ---------------------------------------------------------------------------
// Kernels, modules, memory, streams, events
// ---------------------------------------------------------------------------

std::map<std::string, const rk_emu_kernel*>& kernels() {
  static auto* table = new std::map<std::string, const rk_emu_kernel*>();
  return *table;
}

struct Module;

/**
 * A CUfunction: one emulated kernel of one module, with its loading state.
 * With lazy loading (the driver's default since CUDA 12.2) a kernel is loaded
 * at its first use, and a load can wait for the whole device to go idle:
 * never, beside a resident kernel.
 */
struct Function {
  Module* module = nullptr;
  const rk_emu_kernel* kernel = nullptr;
  std::string name;
  bool loaded = false;
};

struct Module {
  /** Kernel names the image declares. */
  std::set<std::string> entries;
  /** Those the emulator can run (registered in kernels()), by name. */
  std::map<std::string, Function*> functions;
};

struct Stream {
  /** Created with CU_STREAM_NON_BLOCKING: the legacy default stream does not wait for it. */
  bool non_blocking = false;
  /** Kernels of this stream running now. */
  std::atomic<int> running{0};
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::function<void()>> ops;
  bool busy = false;
  bool closing = false;
};

struct Event {
  std::atomic<bool> recorded{false};
  std::atomic<bool> done{false};
  std::atomic<unsigned long long> time_ns{0};
};

/** CUmoduleLoadingMode */
enum : int { CU_MODULE_EAGER_LOADING = 1, CU_MODULE_LAZY_LOADING = 2 };

/** An sm_90 multiprocessor, as the occupancy model sees it. */
constexpr unsigned kMaxThreadsPerSm = 2048;
constexpr unsigned kMaxBlocksPerSm = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
/** Shared memory of one SM usable by blocks, and the 1 KiB the system reserves per block. */
constexpr size_t kSharedPerSm = 233472;
constexpr size_t kSharedReservedPerBlock = 1024;
/** CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
constexpr size_t kMaxSharedPerBlock = 232448;
/** Grids a device keeps resident at once (concurrent kernels, sm_90). */
constexpr int kMaxResidentGrids = 128;
/**
 * A resident launch holds blocks / occupancy of an SM; counted in units of
 * 1/lcm(1..32) of an SM, every occupancy divides it and the sum is exact.
 */
constexpr unsigned long long kUnitsPerSm = 144403552893600ull;
using Units = unsigned __int128;

struct Driver {
  std::mutex mutex;
  bool initialised = false;
  /** Chosen at the first cuInit from CUDA_MODULE_LOADING. */
  int loading_mode = CU_MODULE_LAZY_LOADING;
  /** What cuDriverGetVersion reports (RINGKERNEL_EMULATOR_DRIVER_VERSION at cuInit). */
  int driver_version = 13000;
  /** Multiprocessors (RINGKERNEL_EMULATOR_SMS at cuInit): 132, like an H100 or H200. */
  int multiprocessors = 132;
  /** cuDevicePrimaryCtxRetain minus cuDevicePrimaryCtxRelease_v2. */
  int primary_refs = 0;
  std::set<Module*> modules;
  /** Every valid CUfunction (functions of loaded modules). */
  std::set<Function*> functions;
  /** Launched and not finished (queued or running): grids, their blocks, and their share of the SMs. */
  int resident_grids = 0;
  unsigned long long resident_blocks = 0;
  Units resident_units = 0;
  std::set<Stream*> streams;
  std::set<Event*> events;
  std::map<uintptr_t, size_t> device_memory;
  std::map<uintptr_t, size_t> host_memory;
  std::atomic<CUresult> sticky{CUDA_SUCCESS};
  Stream* null_stream = nullptr;
  /** Kernels running now, and the name of one of them. */
  std::atomic<int> running{0};
  std::atomic<const char*> running_name{nullptr};
  /** Launches running now, by the module of their function (under `mutex`; keys only, never dereferenced). */
  std::map<const Module*, int> running_modules;
};

Driver& driver() {
  static auto* d = new Driver();  // never destroyed: block threads may outlive static destructors
  return *d;
}

unsigned long long now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1000000000ull + static_cast<unsigned long long>(ts.tv_nsec);
}

void stream_worker(Stream* s) {
  std::unique_lock<std::mutex> lock(s->mutex);
  for (;;) {
    s->changed.wait(lock, [s] { return !s->ops.empty() || s->closing; });
    if (s->ops.empty()) break;
    std::function<void()> op = std::move(s->ops.front());
    s->ops.pop_front();
    s->busy = true;
    lock.unlock();
    op();
    lock.lock();
    s->busy = false;
    s->changed.notify_all();
  }
  lock.unlock();
  delete s;
}

Stream* new_stream() {
  Stream* s = new Stream();
  std::thread(stream_worker, s).detach();
  return s;
}

Stream* stream_of(uint64_t handle) {
  Driver& d = driver();
  if (handle == 0) {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (d.null_stream == nullptr) d.null_stream = new_stream();
    return d.null_stream;
  }
  Stream* s = reinterpret_cast<Stream*>(handle);
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.streams.count(s) ? s : nullptr;
}

void enqueue(Stream* s, std::function<void()> op) {
  std::lock_guard<std::mutex> lock(s->mutex);
  s->ops.push_back(std::move(op));
  s->changed.notify_all();
}

bool stream_idle(Stream* s) {
  std::lock_guard<std::mutex> lock(s->mutex);
  return s->ops.empty() && !s->busy;
}

void stream_wait(Stream* s) {
  std::unique_lock<std::mutex> lock(s->mutex);
  s->changed.wait(lock, [s] { return s->ops.empty() && !s->busy; });
}

bool inside(const std::map<uintptr_t, size_t>& blocks, uintptr_t address, size_t bytes) {
  auto it = blocks.upper_bound(address);
  if (it == blocks.begin()) return false;
  --it;
  return address >= it->first && address + bytes <= it->first + it->second;
}

bool device_range(uint64_t address, size_t bytes) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return inside(d.device_memory, address, bytes) || inside(d.host_memory, address, bytes);
}

/** An integer from the environment, or `fallback` when unset or not an integer in [low, high]. */
long env_integer(const char* name, long fallback, long low, long high) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = strtol(text, &end, 10);
  return *end == '\0' && value >= low && value <= high ? value : fallback;
}

/**
 * Blocks of `threads` threads with `shared_bytes` of dynamic shared memory
 * that one sm_90 SM holds at once (registers and static shared memory are not
 * modelled); 0 when such a block cannot run at all.
 */
unsigned occupancy(unsigned long long threads, size_t shared_bytes) {
  if (threads == 0 || threads > kMaxThreadsPerBlock || shared_bytes > kMaxSharedPerBlock) return 0;
  const unsigned long long rounded = (threads + 31) / 32 * 32;
  unsigned blocks = static_cast<unsigned>(kMaxThreadsPerSm / rounded);
  blocks = std::min(blocks, kMaxBlocksPerSm);
  if (shared_bytes > 0) {
    blocks = std::min(blocks, static_cast<unsigned>(kSharedPerSm / (shared_bytes + kSharedReservedPerBlock)));
  }
  return blocks;
}

/**
 * Runs a grid: every block at once, one OS thread each. `units` and `resident_blocks`
 * are what its launch added to the device's residency; released when it ends.
 */
void launch_grid(Stream* stream, const Module* module, const rk_emu_kernel* kernel, void* params, rk_emu_dim3 grid,
                 rk_emu_dim3 dim, unsigned int shared_bytes, Units units, unsigned long long resident_blocks) {
  Driver& d = driver();
  d.running_name = kernel->name;
  ++d.running;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    ++d.running_modules[module];
  }
  ++stream->running;
  std::vector<std::thread> blocks;
  std::mutex errors_mutex;
  std::string first_error;
  bool spawn_failed = false;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        if (spawn_failed) break;
        try {
          blocks.emplace_back([=, &errors_mutex, &first_error] {
            const std::string error = run_block(kernel, params, rk_emu_dim3{x, y, z}, grid, dim, shared_bytes);
            if (!error.empty()) {
              std::lock_guard<std::mutex> lock(errors_mutex);
              if (first_error.empty()) first_error = error;
            }
          });
        } catch (const std::system_error& e) {
          spawn_failed = true;  // the blocks started may wait for it: the grid is lost either way
          std::lock_guard<std::mutex> lock(errors_mutex);
          if (first_error.empty()) {
            first_error = "no OS thread for block " + std::to_string(x) + " of " +
                          std::to_string(static_cast<unsigned long long>(grid.x) * grid.y * grid.z) + ": " + e.what();
          }
        }
      }
    }
  }
  for (std::thread& t : blocks) t.join();
  --stream->running;
  --d.running;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (--d.running_modules[module] == 0) d.running_modules.erase(module);
    --d.resident_grids;
    d.resident_blocks -= resident_blocks;
    d.resident_units -= units;
  }
  kernel->release(params);
  if (!first_error.empty()) {
    fprintf(stderr, "ringkernel CPU emulator: %s: %s\n", kernel->name, first_error.c_str());
    driver().sticky.store(CUDA_ERROR_LAUNCH_FAILED);
  }
}

/** Kernel names a PTX text declares with `.entry NAME`. */
std::set<std::string> ptx_entries(const char* text) {
  std::set<std::string> names;
  const char* p = text;
  while ((p = strstr(p, ".entry")) != nullptr) {
    p += 6;
    while (*p == ' ' || *p == '\t') ++p;
    const char* start = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
           *p == '$') {
      ++p;
    }
    if (p > start) names.insert(std::string(start, p));
  }
  return names;
}

/** Registered kernels whose names a cubin's string tables hold (NUL-delimited). */
std::set<std::string> cubin_entries(const unsigned char* image, size_t size) {
  std::set<std::string> names;
  for (const auto& [name, kernel] : kernels()) {
    std::string needle(1, '\0');
    needle += name;
    needle += '\0';
    const auto* end = image + size;
    if (std::search(image, end, needle.begin(), needle.end()) != end) names.insert(name);
  }
  return names;
}

/**
 * Checks PTX as the driver's JIT would: with ptxas when it is installed (the
 * same compiler), otherwise only its structure. Returns the error log; empty
 * when the PTX is good. Verdicts are kept per text (images load repeatedly).
 */
std::string check_ptx(const char* text) {
  static std::mutex mutex;
  static auto* verdicts = new std::map<std::string, std::string>();
  const std::string ptx(text);
  std::lock_guard<std::mutex> lock(mutex);
  auto known = verdicts->find(ptx);
  if (known != verdicts->end()) return known->second;
  std::string log;
  if (ptx.find(".version") == std::string::npos || ptx.find(".target") == std::string::npos) {
    log = "not PTX (no .version or .target directive)";
  } else if (std::count(ptx.begin(), ptx.end(), '{') != std::count(ptx.begin(), ptx.end(), '}')) {
    log = "unbalanced braces (truncated PTX)";
  } else if (system("command -v ptxas >/dev/null 2>&1") == 0) {
    char path[] = "/tmp/rk-emulator-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0 && write(fd, ptx.data(), ptx.size()) == static_cast<ssize_t>(ptx.size())) {
      close(fd);
      const std::string command = std::string("ptxas -arch=sm_90 -O0 -o /dev/null ") + path + " 2>&1";
      FILE* out = popen(command.c_str(), "r");
      char buffer[512];
      std::string output;
      while (out != nullptr && fgets(buffer, sizeof buffer, out) != nullptr) output += buffer;
      const int status = out != nullptr ? pclose(out) : -1;
      if (status != 0) log = "ptxas: " + output;
    } else if (fd >= 0) {
      close(fd);
    }
    unlink(path);
  }
  (*verdicts)[ptx] = log;
  return log;
}

/**
 * Refuses a call that a GPU would let hang (see `hazard`): prints `message`
 * and returns CUDA_ERROR_NOT_PERMITTED, or CUDA_SUCCESS when
 * RINGKERNEL_EMULATOR_HAZARDS=warn (the call then goes ahead).
 */
CUresult refuse(const std::string& message) {
  fprintf(stderr, "ringkernel CPU emulator: %s\n", message.c_str());
  const char* mode = getenv("RINGKERNEL_EMULATOR_HAZARDS");
  return mode != nullptr && strcmp(mode, "warn") == 0 ? CUDA_SUCCESS : CUDA_ERROR_NOT_PERMITTED;
}

/**
 * A call that can wait forever behind a resident kernel on a GPU (DESIGN:
 * cuMemFree, cuCtxSynchronize, default-stream work, module loads and unloads,
 * allocations, a kernel's first load under lazy loading, the primary
 * context's last release): the emulator refuses it with
 * CUDA_ERROR_NOT_PERMITTED and says why, rather than let it pass where a GPU
 * would hang. RINGKERNEL_EMULATOR_HAZARDS=warn only warns.
 */
CUresult hazard(const std::string& what) {
  const char* name = driver().running_name.load();
  return refuse(what + " while a kernel runs (" + (name != nullptr ? name : "?") +
                "): on a GPU this can wait behind it forever");
}

/** Returns from the calling driver function when `hazard` refuses the call. */
#define RK_REFUSE_HAZARD(what)                    \
  do {                                            \
    const CUresult refused_ = hazard(what);       \
    if (refused_ != CUDA_SUCCESS) return refused_; \
  } while (0)

/** Whether any kernel runs now (on any stream). */
bool kernel_running() { return driver().running.load() > 0; }

/** Whether a kernel runs on a stream the legacy default stream waits for (with `driver().mutex` held). */
bool blocking_kernel_running_locked() {
  for (Stream* s : driver().streams) {
    if (!s->non_blocking && s->running.load() > 0) return true;
  }
  return false;
}

/** Whether a kernel runs on a stream the legacy default stream waits for. */
bool blocking_kernel_running() {
  std::lock_guard<std::mutex> lock(driver().mutex);
  return blocking_kernel_running_locked();
}

template <class T>
T read_le(const unsigned char* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

void write_log(char* buffer, size_t size, const std::string& text) {
  if (buffer == nullptr || size == 0) return;
  const size_t n = std::min(size - 1, text.size());
  memcpy(buffer, text.data(), n);
  buffer[n] = '\0';
}

CUresult load_module(const char* call, void** out, const void* image, char* log, size_t log_size) {
  if (out == nullptr || image == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (kernel_running()) RK_REFUSE_HAZARD(std::string(call) + " (module load)");
  const auto* bytes = static_cast<const unsigned char*>(image);
  auto* module = new Module();
  if (memcmp(bytes, "\x7f" "ELF", 4) == 0) {
    // A cubin: 64-bit ELF for EM_CUDA (190); its extent comes from the header.
    if (bytes[4] != 2 || read_le<uint16_t>(bytes + 18) != 190) {
      delete module;
      return CUDA_ERROR_INVALID_IMAGE;
    }
    const uint64_t shoff = read_le<uint64_t>(bytes + 40);
    const uint16_t shentsize = read_le<uint16_t>(bytes + 58);
    const uint16_t shnum = read_le<uint16_t>(bytes + 60);
    const size_t size = static_cast<size_t>(shoff) + static_cast<size_t>(shentsize) * shnum;
    if (shoff == 0 || shnum == 0 || size > (64u << 20)) {
      delete module;
      return CUDA_ERROR_INVALID_IMAGE;
    }
    std::lock_guard<std::mutex> lock(driver().mutex);  // kernels() grows while NVRTC loads a module
    module->entries = cubin_entries(bytes, size);
  } else {
    const char* text = static_cast<const char*>(image);
    const std::string error = check_ptx(text);
    if (!error.empty()) {
      write_log(log, log_size, "ringkernel CPU emulator: " + error);
      delete module;
      return CUDA_ERROR_INVALID_PTX;
    }
    module->entries = ptx_entries(text);
  }
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  for (const std::string& name : module->entries) {
    auto kernel = kernels().find(name);
    if (kernel == kernels().end()) continue;  // declared, but not one the emulator can run
    auto* f = new Function();
    f->module = module;
    f->kernel = kernel->second;
    f->name = name;
    f->loaded = d.loading_mode == CU_MODULE_EAGER_LOADING;  // eager: every kernel loads with its module
    module->functions[name] = f;
    d.functions.insert(f);
  }
  d.modules.insert(module);
  *out = module;
  return CUDA_SUCCESS;
}

/**
 * Loads a function for its first use (with `driver().mutex` held): under lazy
 * loading that can wait for the device to go idle, so beside a running kernel
 * it is a hazard. `refused` is set to the refusal when there is one.
 */
bool load_function(Function* f, CUresult* refused) {
  *refused = CUDA_SUCCESS;
  if (f->loaded) return true;
  if (kernel_running()) {
    *refused = hazard("first load of kernel " + f->name + " (lazy loading)");
    if (*refused != CUDA_SUCCESS) return false;
  }
  f->loaded = true;
  return true;
}

/** The Function a CUfunction names (with `driver().mutex` held), or null. */
Function* function_of(const void* handle) {
  auto* f = static_cast<Function*>(const_cast<void*>(handle));
  return driver().functions.count(f) ? f : nullptr;
}

const char* error_name(CUresult code) {
  switch (code) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
    case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_NOT_READY: return "CUDA_ERROR_NOT_READY";
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
    case CUDA_ERROR_NOT_PERMITTED: return "CUDA_ERROR_NOT_PERMITTED";
    default: return nullptr;
  }
}

CUresult sticky_or(CUresult result) {
  const CUresult sticky = driver().sticky.load();
  return sticky != CUDA_SUCCESS ? sticky : result;
}

}  // namespace

// ---------------------------------------------------------------------------
// The emulator's side of rk_emulation.h
// ---------------------------------------------------------------------------

extern "C" {

void rk_emu_register_kernel(const rk_emu_kernel* kernel) {
  std::lock_guard<std::mutex> lock(driver().mutex);
  kernels()[kernel->name] = kernel;
  if (loading_module_kernels != nullptr) loading_module_kernels->insert(kernel->name);
}

void rk_emu_syncthreads(void) { yield_fiber(FiberState::AtBarrier); }

void rk_emu_warp_exchange(unsigned long long value, unsigned long long lanes[32]) {
  Fiber& f = current_block->fibers[current_block->current];
  f.warp_value = value;
  f.warp_lanes = lanes;
  yield_fiber(FiberState::AtWarp);
}

void rk_emu_nanosleep(unsigned int ns) {
  // Every thread of a block naps together on a GPU: sleep once per scheduling pass.
  if (current_block != nullptr) {
    if (current_block->slept_this_pass) return;
    current_block->slept_this_pass = true;
  }
  timespec ts{0, static_cast<long>(ns)};
  nanosleep(&ts, nullptr);
}

unsigned long long rk_emu_globaltimer_ns(void) { return now_ns(); }

// ---------------------------------------------------------------------------
// The driver API (signatures as in cuda.h; handles are pointers)
// ---------------------------------------------------------------------------

#define RK_EXPORT __attribute__((visibility("default")))

RK_EXPORT CUresult cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!d.initialised) {
    // As the driver: the loading mode is read once, at the first cuInit; lazy
    // unless CUDA_MODULE_LOADING=EAGER (the default since CUDA 12.2).
    const char* loading = getenv("CUDA_MODULE_LOADING");
    d.loading_mode = loading != nullptr && strcmp(loading, "EAGER") == 0 ? CU_MODULE_EAGER_LOADING
                                                                          : CU_MODULE_LAZY_LOADING;
    d.driver_version = static_cast<int>(env_integer("RINGKERNEL_EMULATOR_DRIVER_VERSION", 13000, 1, 1000000));
    d.multiprocessors = static_cast<int>(env_integer("RINGKERNEL_EMULATOR_SMS", 132, 1, 100000));
    d.initialised = true;
  }
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuDriverGetVersion(int* version) {
  if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  // Callable before cuInit, as on the driver: then the environment says now.
  *version = d.initialised ? d.driver_version
                           : static_cast<int>(env_integer("RINGKERNEL_EMULATOR_DRIVER_VERSION", 13000, 1, 1000000));
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuGetErrorName(CUresult code, const char** name) {
  if (name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *name = error_name(code);
  return *name == nullptr ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

RK_EXPORT CUresult cuGetErrorString(CUresult code, const char** text) {
  if (text == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *text = error_name(code);
  return *text == nullptr ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

RK_EXPORT CUresult cuDeviceGetCount(int* count) {
  if (!driver().initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *count = 1;
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuDeviceGet(int* device, int ordinal) {
  if (!driver().initialised) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}

/** The device name; tests recognise the emulator by it. */
RK_EXPORT CUresult cuDeviceGetName(char* name, int length, int device) {
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (name == nullptr || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  write_log(name, static_cast<size_t>(length), "ringkernel CPU emulator");
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, int device) {
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
  switch (attribute) {
    case 1: *value = static_cast<int>(kMaxThreadsPerBlock); break;  // max threads per block
    case 8: *value = 49152; break;  // shared memory per block
    case 10: *value = 32; break;    // warp size
    case 16: {                      // multiprocessors: the residency model's, not this machine's cores
      std::lock_guard<std::mutex> lock(driver().mutex);
      *value = driver().multiprocessors;
      break;
    }
    case 19: *value = 1; break;     // can map host memory
    case 31: *value = 1; break;     // concurrent kernels
    case 39: *value = static_cast<int>(kMaxThreadsPerSm); break;  // max threads per multiprocessor
    case 41: *value = 1; break;     // unified addressing
    case 75: *value = 9; break;     // compute capability (the bundle's sm_90 cubin)
    case 76: *value = 0; break;
    case 95: *value = 1; break;     // cooperative launch
    case 97: *value = static_cast<int>(kMaxSharedPerBlock); break;  // shared memory per block, opt-in
    case 106: *value = static_cast<int>(kMaxBlocksPerSm); break;    // max blocks per multiprocessor
    case 115: *value = 1; break;    // memory pools
    default: *value = 0;
  }
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuDevicePrimaryCtxRetain(void** context, int device) {
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  ++d.primary_refs;
  *context = &d;
  return CUDA_SUCCESS;
}

/**
 * The last release destroys the primary context, which first waits for its
 * work: for ever, beside a resident kernel. (The emulator keeps its state.)
 */
RK_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int device) {
  if (device != 0) return CUDA_ERROR_INVALID_DEVICE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.primary_refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (d.primary_refs == 1 && kernel_running()) {
    RK_REFUSE_HAZARD("cuDevicePrimaryCtxRelease_v2 of the last reference (context release)");
  }
  --d.primary_refs;
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuCtxSetCurrent(void* context) {
  return context == nullptr || context == &driver() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

RK_EXPORT CUresult cuCtxSynchronize(void) {
  Driver& d = driver();
  if (d.running.load() > 0) RK_REFUSE_HAZARD("cuCtxSynchronize");
  std::vector<Stream*> streams;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    streams.assign(d.streams.begin(), d.streams.end());
    if (d.null_stream) streams.push_back(d.null_stream);
  }
  for (Stream* s : streams) stream_wait(s);
  return sticky_or(CUDA_SUCCESS);
}

RK_EXPORT CUresult cuModuleGetLoadingMode(int* mode) {
  if (mode == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!d.initialised) return CUDA_ERROR_NOT_INITIALIZED;
  *mode = d.loading_mode;
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuModuleLoadData(void** module, const void* image) {
  return load_module("cuModuleLoadData", module, image, nullptr, 0);
}

RK_EXPORT CUresult cuModuleLoadDataEx(void** module, const void* image, unsigned int count, const int* options,
                                      void** values) {
  char* log = nullptr;
  size_t log_size = 0;
  for (unsigned int i = 0; i < count && options != nullptr && values != nullptr; ++i) {
    if (options[i] == 5) log = static_cast<char*>(values[i]);                         // CU_JIT_ERROR_LOG_BUFFER
    if (options[i] == 6) log_size = static_cast<size_t>(reinterpret_cast<uintptr_t>(values[i]));  // its size
  }
  return load_module("cuModuleLoadDataEx", module, image, log, log_size);
}

RK_EXPORT CUresult cuModuleUnload(void* module) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto* m = static_cast<Module*>(module);
  if (!d.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;
  if (kernel_running()) {
    // Unloading synchronises with the device: any running kernel, not only the module's own.
    const bool own = d.running_modules.count(m) > 0;
    RK_REFUSE_HAZARD(own ? "cuModuleUnload of a module whose kernel runs" : "cuModuleUnload (module unload)");
  }
  d.modules.erase(m);
  for (const auto& [name, f] : m->functions) {
    d.functions.erase(f);
    delete f;
  }
  delete m;
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuModuleGetFunction(const void** function, void* module, const char* name) {
  if (function == nullptr || name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto* m = static_cast<Module*>(module);
  if (!d.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;
  if (!m->entries.count(name)) return CUDA_ERROR_NOT_FOUND;
  auto it = m->functions.find(name);
  if (it == m->functions.end()) {
    // Declared by the image but not compiled into the emulator (user PTX, NVRTC output).
    fprintf(stderr, "ringkernel CPU emulator: kernel %s is not one of the emulated device sources\n", name);
    return CUDA_ERROR_NOT_FOUND;
  }
  CUresult refused;
  if (!load_function(it->second, &refused)) return refused;  // lazy: the first fetch loads it
  *function = it->second;
  return CUDA_SUCCESS;
}

/** Kernels of the module that the emulator can run (what cuModuleEnumerateFunctions lists). */
RK_EXPORT CUresult cuModuleGetFunctionCount(unsigned int* count, void* module) {
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto* m = static_cast<Module*>(module);
  if (!d.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;
  *count = static_cast<unsigned int>(m->functions.size());
  return CUDA_SUCCESS;
}

/** At most `capacity` of the module's functions, by name; under lazy loading not loaded until first used. */
RK_EXPORT CUresult cuModuleEnumerateFunctions(const void** functions, unsigned int capacity, void* module) {
  if (functions == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto* m = static_cast<Module*>(module);
  if (!d.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;
  unsigned int i = 0;
  for (const auto& [name, f] : m->functions) {
    if (i == capacity) break;
    functions[i++] = f;
  }
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuFuncGetName(const char** name, const void* function) {
  if (name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  Function* f = function_of(function);
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  *name = f->name.c_str();
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuFuncLoad(const void* function) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  Function* f = function_of(function);
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  CUresult refused;
  return load_function(f, &refused) ? CUDA_SUCCESS : refused;
}

/** CUfunctionLoadingState: 0 unloaded, 1 loaded. */
RK_EXPORT CUresult cuFuncIsLoaded(int* state, const void* function) {
  if (state == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  Function* f = function_of(function);
  if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  *state = f->loaded ? 1 : 0;
  return CUDA_SUCCESS;
}

/**
 * Blocks of the function one sm_90 SM holds (see `occupancy`): threads and
 * dynamic shared memory limit it, registers and static shared memory are not
 * modelled.
 */
RK_EXPORT CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void* function, int block_size,
                                                              size_t shared_bytes) {
  if (blocks == nullptr || block_size <= 0) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (function_of(function) == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  *blocks = static_cast<int>(occupancy(static_cast<unsigned long long>(block_size), shared_bytes));
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuModuleGetGlobal_v2(uint64_t*, size_t*, void* module, const char*) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.modules.count(static_cast<Module*>(module)) ? CUDA_ERROR_NOT_FOUND : CUDA_ERROR_INVALID_HANDLE;
}

static std::string units_as_sms(Units units) {
  char text[64];
  snprintf(text, sizeof text, "%.2f", static_cast<double>(units) / static_cast<double>(kUnitsPerSm));
  return text;
}

/**
 * Launches a grid. Residency: from here until the grid ends, a launch holds
 * blocks / (occupancy x SMs) of the device. A launch that would take the sum
 * past the whole device, or a 129th grid, is refused as a hazard: on a GPU
 * its blocks would wait for SMs that resident kernels never give back.
 */
RK_EXPORT CUresult cuLaunchKernel(const void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                  unsigned by, unsigned bz, unsigned shared_bytes, uint64_t stream, void** params,
                                  void** extra) {
  Driver& d = driver();
  const rk_emu_kernel* kernel = nullptr;
  const Module* module = nullptr;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    Function* f = function_of(function);
    if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;
    kernel = f->kernel;
    module = f->module;
  }
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return CUDA_ERROR_INVALID_VALUE;
  if (gx > 0x7fffffffu || gy > 65535 || gz > 65535 || bz > 64) return CUDA_ERROR_INVALID_VALUE;
  const unsigned long long threads = static_cast<unsigned long long>(bx) * by * bz;
  if (threads > kMaxThreadsPerBlock) return CUDA_ERROR_INVALID_VALUE;
  if (shared_bytes > kMaxSharedPerBlock) return CUDA_ERROR_INVALID_VALUE;
  if (extra != nullptr || (kernel->param_count > 0 && params == nullptr)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  const CUresult sticky = d.sticky.load();
  if (sticky != CUDA_SUCCESS) return sticky;
  const unsigned long long blocks = static_cast<unsigned long long>(gx) * gy * gz;
  const unsigned per_sm = occupancy(threads, shared_bytes);  // >= 1: the block's shape is valid
  const Units units = static_cast<Units>(blocks) * (kUnitsPerSm / per_sm);
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    Function* f = function_of(function);
    if (f == nullptr) return CUDA_ERROR_INVALID_HANDLE;  // unloaded meanwhile
    if (!f->loaded && kernel_running()) {
      RK_REFUSE_HAZARD("first load of kernel " + f->name + " (lazy loading, at its first launch)");
    }
    if (s == d.null_stream && blocking_kernel_running_locked()) {
      RK_REFUSE_HAZARD("cuLaunchKernel on the default stream");
    }
    if (d.resident_grids >= kMaxResidentGrids) {
      const CUresult refused =
          refuse("cuLaunchKernel of " + f->name + ": " + std::to_string(d.resident_grids) +
                 " grids are resident already, and a device keeps at most " + std::to_string(kMaxResidentGrids) +
                 " grids resident: on a GPU this launch waits for one of them to end, forever beside resident "
                 "kernels");
      if (refused != CUDA_SUCCESS) return refused;
    }
    const Units capacity = static_cast<Units>(d.multiprocessors) * kUnitsPerSm;
    if (d.resident_units + units > capacity) {
      const unsigned long long fit = static_cast<unsigned long long>(per_sm) * d.multiprocessors;
      const Units left = d.resident_units < capacity ? capacity - d.resident_units : 0;
      const unsigned long long free_blocks = static_cast<unsigned long long>(left / (kUnitsPerSm / per_sm));
      const CUresult refused = refuse(
          "cuLaunchKernel of " + f->name + " with " + std::to_string(blocks) + " blocks of " +
          std::to_string(threads) + " threads and " + std::to_string(shared_bytes) +
          " bytes of dynamic shared memory: the device's capacity is " + std::to_string(fit) + " such blocks (" +
          std::to_string(per_sm) + " per SM x " + std::to_string(d.multiprocessors) + " SMs), " +
          std::to_string(free_blocks) + " of them free beside " + std::to_string(d.resident_grids) +
          " resident grids (" + units_as_sms(d.resident_units) +
          " SMs held): a block that does not fit waits for a free SM, forever on a resident design");
      if (refused != CUDA_SUCCESS) return refused;
    }
    f->loaded = true;  // lazy: the first launch loads it
    ++d.resident_grids;
    d.resident_blocks += blocks;
    d.resident_units += units;
  }
  void* captured = kernel->capture(params);
  const rk_emu_dim3 grid{gx, gy, gz};
  const rk_emu_dim3 dim{bx, by, bz};
  enqueue(s, [=] { launch_grid(s, module, kernel, captured, grid, dim, shared_bytes, units, blocks); });
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuStreamCreate(void** stream, unsigned int flags) {
  if (stream == nullptr || flags > 1) return CUDA_ERROR_INVALID_VALUE;
  Stream* s = new_stream();
  s->non_blocking = flags == 1;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.streams.insert(s);
  *stream = s;
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuStreamSynchronize(uint64_t stream) {
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  stream_wait(s);
  return sticky_or(CUDA_SUCCESS);
}

RK_EXPORT CUresult cuStreamQuery(uint64_t stream) {
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  return sticky_or(stream_idle(s) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY);
}

RK_EXPORT CUresult cuStreamDestroy_v2(uint64_t stream) {
  Driver& d = driver();
  Stream* s = reinterpret_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (!d.streams.erase(s)) return CUDA_ERROR_INVALID_HANDLE;
  }
  // As the driver does: returns at once; the stream goes when its work is done.
  std::lock_guard<std::mutex> lock(s->mutex);
  s->closing = true;
  s->changed.notify_all();
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuEventCreate(void** event, unsigned int) {
  if (event == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Event* e = new Event();
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.events.insert(e);
  *event = e;
  return CUDA_SUCCESS;
}

static Event* event_of(uint64_t handle) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  Event* e = reinterpret_cast<Event*>(handle);
  return d.events.count(e) ? e : nullptr;
}

RK_EXPORT CUresult cuEventRecord(uint64_t event, uint64_t stream) {
  Event* e = event_of(event);
  Stream* s = stream_of(stream);
  if (e == nullptr || s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  e->done = false;
  e->recorded = true;
  enqueue(s, [e] {
    e->time_ns = now_ns();
    e->done = true;
  });
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuEventQuery(uint64_t event) {
  Event* e = event_of(event);
  if (e == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  return !e->recorded || e->done ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

RK_EXPORT CUresult cuEventSynchronize(uint64_t event) {
  Event* e = event_of(event);
  if (e == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  while (e->recorded && !e->done) std::this_thread::sleep_for(std::chrono::microseconds(20));
  return sticky_or(CUDA_SUCCESS);
}

RK_EXPORT CUresult cuEventElapsedTime_v2(float* ms, uint64_t start, uint64_t end) {
  Event* a = event_of(start);
  Event* b = event_of(end);
  if (ms == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (a == nullptr || b == nullptr || !a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
  if (!a->done || !b->done) return CUDA_ERROR_NOT_READY;
  *ms = static_cast<float>(static_cast<double>(static_cast<long long>(b->time_ns - a->time_ns)) / 1e6);
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuEventElapsedTime(float* ms, uint64_t start, uint64_t end) {
  return cuEventElapsedTime_v2(ms, start, end);
}

RK_EXPORT CUresult cuEventDestroy_v2(uint64_t event) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  Event* e = reinterpret_cast<Event*>(event);
  if (!d.events.erase(e)) return CUDA_ERROR_INVALID_HANDLE;
  // A pending record still refers to it: leak the few bytes rather than race.
  if (!e->recorded || e->done) delete e;
  return CUDA_SUCCESS;
}

static CUresult allocate(std::map<uintptr_t, size_t>& table, void** out, size_t bytes, size_t alignment) {
  if (out == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  void* p = aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  if (p == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  table[reinterpret_cast<uintptr_t>(p)] = bytes;
  *out = p;
  return CUDA_SUCCESS;
}

static CUresult release(std::map<uintptr_t, size_t>& table, uint64_t address) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!table.erase(address)) return CUDA_ERROR_INVALID_VALUE;
  free(reinterpret_cast<void*>(address));
  return CUDA_SUCCESS;
}

/**
 * Allocating can wait for the device (the driver may map memory or grow a
 * pool with a device synchronisation): a hazard beside a running kernel.
 */
RK_EXPORT CUresult cuMemAlloc_v2(void** address, size_t bytes) {
  if (kernel_running()) RK_REFUSE_HAZARD("cuMemAlloc_v2 (allocation)");
  return allocate(driver().device_memory, address, bytes, 256);
}

RK_EXPORT CUresult cuMemFree_v2(uint64_t address) {
  if (driver().running.load() > 0) RK_REFUSE_HAZARD("cuMemFree_v2");
  return release(driver().device_memory, address);
}

RK_EXPORT CUresult cuMemAllocAsync(void** address, size_t bytes, uint64_t stream) {
  if (stream_of(stream) == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (kernel_running()) RK_REFUSE_HAZARD("cuMemAllocAsync (allocation)");
  return allocate(driver().device_memory, address, bytes, 256);
}

RK_EXPORT CUresult cuMemFreeAsync(uint64_t address, uint64_t stream) {
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (!device_range(address, 1)) return CUDA_ERROR_INVALID_VALUE;
  enqueue(s, [address] { release(driver().device_memory, address); });
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemsetD8_v2(uint64_t address, unsigned char value, size_t bytes) {
  if (blocking_kernel_running()) RK_REFUSE_HAZARD("cuMemsetD8_v2 (default stream)");
  if (!device_range(address, bytes)) return CUDA_ERROR_INVALID_VALUE;
  memset(reinterpret_cast<void*>(address), value, bytes);
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemHostAlloc(void** pointer, size_t bytes, unsigned int) {
  if (kernel_running()) RK_REFUSE_HAZARD("cuMemHostAlloc (allocation)");
  return allocate(driver().host_memory, pointer, bytes, 4096);
}

RK_EXPORT CUresult cuMemHostGetDevicePointer_v2(uint64_t* address, void* pointer, unsigned int flags) {
  if (address == nullptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!inside(d.host_memory, reinterpret_cast<uintptr_t>(pointer), 1)) return CUDA_ERROR_INVALID_VALUE;
  *address = reinterpret_cast<uint64_t>(pointer);
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemFreeHost(uint64_t pointer) {
  if (driver().running.load() > 0) RK_REFUSE_HAZARD("cuMemFreeHost");
  return release(driver().host_memory, pointer);
}

RK_EXPORT CUresult cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t bytes) {
  if (blocking_kernel_running()) RK_REFUSE_HAZARD("cuMemcpyHtoD_v2 (default stream)");
  if (!device_range(dst, bytes) || src == nullptr) return CUDA_ERROR_INVALID_VALUE;
  memcpy(reinterpret_cast<void*>(dst), src, bytes);
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t bytes) {
  if (blocking_kernel_running()) RK_REFUSE_HAZARD("cuMemcpyDtoH_v2 (default stream)");
  if (!device_range(src, bytes) || dst == nullptr) return CUDA_ERROR_INVALID_VALUE;
  memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemcpyHtoDAsync_v2(uint64_t dst, const void* src, size_t bytes, uint64_t stream) {
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (!device_range(dst, bytes) || src == nullptr) return CUDA_ERROR_INVALID_VALUE;
  // Pageable source: the driver stages it before returning, so take a copy now.
  auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                             static_cast<const unsigned char*>(src) + bytes);
  enqueue(s, [dst, staged] { memcpy(reinterpret_cast<void*>(dst), staged->data(), staged->size()); });
  return CUDA_SUCCESS;
}

RK_EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, uint64_t src, size_t bytes, uint64_t stream) {
  Stream* s = stream_of(stream);
  if (s == nullptr) return CUDA_ERROR_INVALID_HANDLE;
  if (!device_range(src, bytes) || dst == nullptr) return CUDA_ERROR_INVALID_VALUE;
  // Pageable destination: the copy has landed when the call returns.
  std::atomic<bool> copied{false};
  enqueue(s, [&copied, dst, src, bytes] {
    memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    copied = true;
  });
  while (!copied) std::this_thread::sleep_for(std::chrono::microseconds(10));
  return CUDA_SUCCESS;
}

/**
 * What the emulator holds now, for leak checks: device allocations, pinned
 * host allocations, modules, streams and events not yet released, and
 * kernels running. Not part of libcuda.
 */
RK_EXPORT void rkEmulatorLiveObjects(unsigned long long counts[6]) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  counts[0] = d.device_memory.size();
  counts[1] = d.host_memory.size();
  counts[2] = d.modules.size();
  counts[3] = d.streams.size();
  counts[4] = d.events.size();
  counts[5] = static_cast<unsigned long long>(d.running.load());
}

/**
 * The device's residency now: grids launched and not finished (queued or
 * running), and their blocks. Not part of libcuda.
 */
RK_EXPORT void rkEmulatorResidency(unsigned long long counts[2]) {
  Driver& d = driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  counts[0] = static_cast<unsigned long long>(d.resident_grids);
  counts[1] = d.resident_blocks;
}

}  // extern "C"

// ---------------------------------------------------------------------------
// NVRTC, emulated: CUDA C++ source is compiled for the host with g++ (as the
// bundle's sources are), loaded into this process, and described by a PTX
// text that declares its kernels, which cuModuleLoadData then resolves here.
// ---------------------------------------------------------------------------

#ifndef RK_EMULATOR_HEADER
#error "build with -DRK_EMULATOR_HEADER=<path of rk_emulation.h> (scripts/build_emulator.ts does)"
#endif
#ifndef RK_EMULATOR_CXXFLAGS
#error "build with -DRK_EMULATOR_CXXFLAGS=<g++ flags> (scripts/build_emulator.ts does)"
#endif

typedef int nvrtcResult;
enum : nvrtcResult {
  NVRTC_SUCCESS = 0,
  NVRTC_ERROR_OUT_OF_MEMORY = 1,
  NVRTC_ERROR_PROGRAM_CREATION_FAILURE = 2,
  NVRTC_ERROR_INVALID_INPUT = 3,
  NVRTC_ERROR_INVALID_PROGRAM = 4,
  NVRTC_ERROR_COMPILATION = 6,
  NVRTC_ERROR_INTERNAL_ERROR = 11,
};

struct NvrtcProgram {
  std::string source;
  std::string name;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string log;
  std::string ptx;
  bool compiled = false;
};

static std::string emulator_path() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&rk_emu_register_kernel), &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

static std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

static std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

static bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return static_cast<bool>(out);
}

static std::string run_command(const std::string& command, int* status) {
  FILE* out = popen((command + " 2>&1").c_str(), "r");
  std::string output;
  char buffer[512];
  while (out != nullptr && fgets(buffer, sizeof buffer, out) != nullptr) output += buffer;
  *status = out != nullptr ? pclose(out) : -1;
  return output;
}

extern "C" {

RK_EXPORT nvrtcResult nvrtcVersion(int* major, int* minor) {
  if (major == nullptr || minor == nullptr) return NVRTC_ERROR_INVALID_INPUT;
  *major = 13;
  *minor = 0;
  return NVRTC_SUCCESS;
}

RK_EXPORT const char* nvrtcGetErrorString(nvrtcResult result) {
  switch (result) {
    case NVRTC_SUCCESS: return "NVRTC_SUCCESS";
    case NVRTC_ERROR_OUT_OF_MEMORY: return "NVRTC_ERROR_OUT_OF_MEMORY";
    case NVRTC_ERROR_PROGRAM_CREATION_FAILURE: return "NVRTC_ERROR_PROGRAM_CREATION_FAILURE";
    case NVRTC_ERROR_INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
    case NVRTC_ERROR_INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
    case NVRTC_ERROR_COMPILATION: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR_INTERNAL_ERROR";
  }
}

RK_EXPORT nvrtcResult nvrtcCreateProgram(NvrtcProgram** program, const char* source, const char* name, int count,
                                         const char* const* headers, const char* const* names) {
  if (program == nullptr || source == nullptr || count < 0) return NVRTC_ERROR_INVALID_INPUT;
  if (count > 0 && (headers == nullptr || names == nullptr)) return NVRTC_ERROR_INVALID_INPUT;
  auto* p = new NvrtcProgram();
  p->source = source;
  p->name = name != nullptr && *name != '\0' ? base_name(name) : "default_program.cu";
  for (int i = 0; i < count; ++i) {
    if (headers[i] == nullptr || names[i] == nullptr) {
      delete p;
      return NVRTC_ERROR_INVALID_INPUT;
    }
    p->headers.emplace_back(base_name(names[i]), headers[i]);
  }
  *program = p;
  return NVRTC_SUCCESS;
}

/**
 * Compiles the program with g++ into a shared object linked to this library,
 * loads it (its kernels register themselves), and writes a PTX text that
 * declares them. `-D` and `-I` options pass through; GPU options are moot.
 */
RK_EXPORT nvrtcResult nvrtcCompileProgram(NvrtcProgram* p, int count, const char* const* options) {
  if (p == nullptr) return NVRTC_ERROR_INVALID_PROGRAM;
  if (count < 0 || (count > 0 && options == nullptr)) return NVRTC_ERROR_INVALID_INPUT;
  char dir_template[] = "/tmp/rk-emulator-nvrtc-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return NVRTC_ERROR_INTERNAL_ERROR;
  const std::string dir = dir_template;
  for (const auto& [name, text] : p->headers) write_file(dir + "/" + name, text);
  write_file(dir + "/" + p->name, p->source);
  write_file(dir + "/module.cpp",
             std::string("#include \"") + RK_EMULATOR_HEADER + "\"\n#include \"" + p->name + "\"\n");
  std::string extra;
  for (int i = 0; i < count; ++i) {
    const std::string option = options[i] != nullptr ? options[i] : "";
    if (option.rfind("-D", 0) == 0 || option.rfind("-I", 0) == 0) extra += " " + shell_quote(option);
  }
  const std::string library = emulator_path();
  const std::string module = dir + "/module.so";
  const std::string command = std::string("g++ ") + RK_EMULATOR_CXXFLAGS + " -shared -I" + shell_quote(dir) + extra +
                              " -o " + shell_quote(module) + " " + shell_quote(dir + "/module.cpp") + " " +
                              shell_quote(library);
  int status = 0;
  p->log = run_command(command, &status);
  if (status != 0) {
    p->log = "ringkernel CPU emulator: g++ could not compile " + p->name + " for the host:\n" + p->log;
    return NVRTC_ERROR_COMPILATION;
  }
  std::set<std::string> registered;
  loading_module_kernels = &registered;
  void* handle = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept loaded: its kernels may run
  loading_module_kernels = nullptr;
  if (handle == nullptr) {
    p->log += std::string("ringkernel CPU emulator: cannot load the compiled module: ") + dlerror();
    return NVRTC_ERROR_COMPILATION;
  }
  std::string ptx = "//\n// ringkernel CPU emulator: " + p->name + " compiled for the host as " + module +
                    "\n//\n.version 8.0\n.target sm_80\n.address_size 64\n";
  for (const std::string& name : registered) ptx += "\n.visible .entry " + name + "()\n{\n\tret;\n}\n";
  p->ptx = ptx;
  p->compiled = true;
  return NVRTC_SUCCESS;
}

RK_EXPORT nvrtcResult nvrtcGetProgramLogSize(NvrtcProgram* p, size_t* size) {
  if (p == nullptr) return NVRTC_ERROR_INVALID_PROGRAM;
  if (size == nullptr) return NVRTC_ERROR_INVALID_INPUT;
  *size = p->log.size() + 1;
  return NVRTC_SUCCESS;
}

RK_EXPORT nvrtcResult nvrtcGetProgramLog(NvrtcProgram* p, char* log) {
  if (p == nullptr) return NVRTC_ERROR_INVALID_PROGRAM;
  if (log == nullptr) return NVRTC_ERROR_INVALID_INPUT;
  memcpy(log, p->log.c_str(), p->log.size() + 1);
  return NVRTC_SUCCESS;
}

RK_EXPORT nvrtcResult nvrtcGetPTXSize(NvrtcProgram* p, size_t* size) {
  if (p == nullptr || !p->compiled) return NVRTC_ERROR_INVALID_PROGRAM;
  if (size == nullptr) return NVRTC_ERROR_INVALID_INPUT;
  *size = p->ptx.size() + 1;
  return NVRTC_SUCCESS;
}

RK_EXPORT nvrtcResult nvrtcGetPTX(NvrtcProgram* p, char* ptx) {
  if (p == nullptr || !p->compiled) return NVRTC_ERROR_INVALID_PROGRAM;
  if (ptx == nullptr) return NVRTC_ERROR_INVALID_INPUT;
  memcpy(ptx, p->ptx.c_str(), p->ptx.size() + 1);
  return NVRTC_SUCCESS;
}

RK_EXPORT nvrtcResult nvrtcDestroyProgram(NvrtcProgram** p) {
  if (p == nullptr || *p == nullptr) return NVRTC_ERROR_INVALID_PROGRAM;
  delete *p;
  *p = nullptr;
  return NVRTC_SUCCESS;
}

}  // extern "C"
