// A CPU stand-in for a CUDA device, for tests/host/mod.rs: holds buffers
// and runs the project's kernels (kernels/cuda/*.cu compiled as host C++
// through port.cuh) with an emulated launch shape. Commands on stdin, one
// reply line per command on stdout; numbers in hex.
//
//   Z id bytes                  create (or replace) a zeroed buffer
//   U id elem_bytes count w...  create (or replace) a buffer from elements
//   D id elem_bytes             reply: count w... (the buffer's elements)
//   F id                        free a buffer
//   W id offset nbytes w...     write bytes at a byte offset (little-endian
//                               64-bit words, the last one partly used)
//   R id offset nbytes          reply: the bytes as W takes them
//   M id offset nbytes          set bytes to zero
//   Q ...                       call a device function (see command())
//   L name grid block order n args...
//                               launch kernel `name` (snn_host_launch); an
//                               argument is `p id byte_offset` (a pointer
//                               into a buffer), `s bits` (a scalar: the low
//                               bytes of a 64-bit word) or `r bytes w...` (a
//                               struct: its bytes packed in little-endian
//                               64-bit words; the size must be the C struct's)
//
// Replies: `ok`, the data of D, or `err message`. Every buffer has a guard
// zone after its end that a launch must leave untouched (a cheap check for
// writes past the end).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <string>
#include <vector>

#include "neuron.cu"
#include "deliver.cu"
#include "connect.cu"

struct Args;
// Kernels of the simulation engine (host_sim.inc) and of the builder
// (host_build.inc): each returns false for a name it does not know.
static bool launch_sim(const std::string& name, uint32_t grid, uint32_t block, uint32_t order,
                       Args& a);
static bool launch_build(const std::string& name, uint32_t grid, uint32_t block,
                         uint32_t order, Args& a);

typedef unsigned long long ull;

static const size_t GUARD = 64;
static const unsigned char GUARD_BYTE = 0xa5;

struct Buffer {
    std::vector<uint64_t> words;  // 8-byte aligned storage
    size_t bytes;
    unsigned char* data() { return (unsigned char*)words.data(); }
};

static std::map<ull, Buffer> buffers;

struct Error {
    std::string what;
};

static ull rd() {
    ull x = 0;
    if (scanf("%llx", &x) != 1) {
        throw Error{"bad input"};
    }
    return x;
}

static Buffer& make(ull id, size_t bytes) {
    Buffer& b = buffers[id];
    b.bytes = bytes;
    b.words.assign((bytes + GUARD + 7) / 8, 0);
    memset(b.data() + bytes, GUARD_BYTE, b.words.size() * 8 - bytes);
    return b;
}

static Buffer& find(ull id) {
    std::map<ull, Buffer>::iterator it = buffers.find(id);
    if (it == buffers.end()) {
        throw Error{"no buffer " + std::to_string(id)};
    }
    return it->second;
}

static void check_guards() {
    for (std::map<ull, Buffer>::iterator it = buffers.begin(); it != buffers.end(); ++it) {
        Buffer& b = it->second;
        for (size_t i = b.bytes; i < b.words.size() * 8; ++i) {
            if (b.data()[i] != GUARD_BYTE) {
                throw Error{"write past the end of buffer " + std::to_string(it->first)};
            }
        }
    }
}

struct Arg {
    char kind;
    ull id, off, value;
    std::vector<unsigned char> bytes;
};

// The arguments of one launch, taken in order with their C types.
struct Args {
    std::vector<Arg> list;
    size_t next = 0;

    Arg& take(char kind) {
        if (next >= list.size()) {
            throw Error{"too few arguments"};
        }
        Arg& a = list[next++];
        if (a.kind != kind) {
            throw Error{"argument " + std::to_string(next - 1) + ": expected kind " +
                        std::string(1, kind)};
        }
        return a;
    }
    template <class T>
    T* ptr() {
        Arg& a = take('p');
        Buffer& b = find(a.id);
        if (a.off % alignof(T) != 0 || a.off > b.bytes) {
            throw Error{"argument " + std::to_string(next - 1) + ": bad offset"};
        }
        return (T*)(b.data() + a.off);
    }
    template <class T>
    T scalar() {
        Arg& a = take('s');
        T x;
        memcpy(&x, &a.value, sizeof x);
        return x;
    }
    template <class T>
    T strct() {
        Arg& a = take('r');
        if (a.bytes.size() != sizeof(T)) {
            throw Error{"argument " + std::to_string(next - 1) + ": struct of " +
                        std::to_string(a.bytes.size()) + " bytes, the C struct has " +
                        std::to_string(sizeof(T))};
        }
        T x;
        memcpy(&x, a.bytes.data(), sizeof x);
        return x;
    }
    void done() {
        if (next != list.size()) {
            throw Error{"too many arguments"};
        }
    }
};

static void launch(const std::string& name, uint32_t grid, uint32_t block, uint32_t order,
                   Args& a) {
    if ((ull)grid * block == 0 || (ull)grid * block >= (1ull << 32)) {
        throw Error{"bad launch shape"};
    }
    if (name == "snn_model_update") {
        uint32_t kind = a.scalar<uint32_t>();
        SnnModelConsts c = a.strct<SnnModelConsts>();
        SnnStepInput in = a.strct<SnnStepInput>();
        double* vars = a.ptr<double>();
        uint64_t stride = a.scalar<uint64_t>();
        uint32_t* refr = a.ptr<uint32_t>();
        int64_t* row_ex = a.ptr<int64_t>();
        int64_t* row_in = a.ptr<int64_t>();
        const uint64_t* gid = a.ptr<uint64_t>();
        const uint64_t* table = a.ptr<uint64_t>();
        uint64_t* spikes = a.ptr<uint64_t>();
        uint32_t* n_spikes = a.ptr<uint32_t>();
        a.done();
        snn_host_launch(grid, block, order, [&] {
            snn_model_update(kind, c, in, vars, stride, refr, row_ex, row_in, gid, table, spikes,
                             n_spikes);
        });
    } else if (name == "snn_deliver") {
        const uint64_t* spikes = a.ptr<uint64_t>();
        uint32_t n_spikes = a.scalar<uint32_t>();
        uint64_t interval_start = a.scalar<uint64_t>();
        const uint64_t* row_ptr = a.ptr<uint64_t>();
        const uint32_t* syn_td = a.ptr<uint32_t>();
        const int32_t* syn_w = a.ptr<int32_t>();
        uint32_t target_bits = a.scalar<uint32_t>();
        uint64_t slots = a.scalar<uint64_t>();
        uint32_t n_local = a.scalar<uint32_t>();
        int64_t* ring_ex = a.ptr<int64_t>();
        int64_t* ring_in = a.ptr<int64_t>();
        a.done();
        snn_host_launch(grid, block, order, [&] {
            snn_deliver(spikes, n_spikes, interval_start, row_ptr, syn_td, syn_w, target_bits,
                        slots, n_local, ring_ex, ring_in);
        });
    } else if (name == "snn_connect_per_synapse") {
        SnnConnectParams p = a.strct<SnnConnectParams>();
        const SnnZigTables* zig = a.ptr<SnnZigTables>();
        const uint64_t* syn_offset = a.ptr<uint64_t>();
        uint32_t n_targets = a.scalar<uint32_t>();
        const uint32_t* tgt_index = a.ptr<uint32_t>();
        const uint32_t* tgt_local = a.ptr<uint32_t>();
        uint32_t* out_src = a.ptr<uint32_t>();
        int32_t* out_w = a.ptr<int32_t>();
        uint32_t* out_td = a.ptr<uint32_t>();
        uint32_t* n_bad = a.ptr<uint32_t>();
        a.done();
        snn_host_launch(grid, block, order, [&] {
            snn_connect_per_synapse(p, zig, syn_offset, n_targets, tgt_index, tgt_local, out_src,
                                    out_w, out_td, n_bad);
        });
    } else if (!launch_sim(name, grid, block, order, a) &&
               !launch_build(name, grid, block, order, a)) {
        throw Error{"unknown kernel " + name};
    }
    check_guards();
}

#include "host_sim.inc"
#include "host_build.inc"

// Checks a byte range of a buffer.
static Buffer& find_range(ull id, ull off, ull n) {
    Buffer& b = find(id);
    if (off > b.bytes || n > b.bytes - off) {
        throw Error{"byte range past the end of buffer " + std::to_string(id)};
    }
    return b;
}

static void command(char op) {
    switch (op) {
    case 'Z': {
        ull id = rd(), bytes = rd();
        make(id, bytes);
        printf("ok");
        break;
    }
    case 'U': {
        ull id = rd(), elem = rd(), count = rd();
        if (elem == 0 || elem > 8) {
            throw Error{"bad element size"};
        }
        Buffer& b = make(id, elem * count);
        for (ull i = 0; i < count; ++i) {
            ull w = rd();
            memcpy(b.data() + i * elem, &w, elem);  // little-endian host
        }
        printf("ok");
        break;
    }
    case 'D': {
        ull id = rd(), elem = rd();
        Buffer& b = find(id);
        if (elem == 0 || elem > 8 || b.bytes % elem != 0) {
            throw Error{"bad element size"};
        }
        ull count = b.bytes / elem;
        printf("%llx", count);
        for (ull i = 0; i < count; ++i) {
            ull w = 0;
            memcpy(&w, b.data() + i * elem, elem);
            printf(" %llx", w);
        }
        break;
    }
    case 'F': {
        buffers.erase(rd());
        printf("ok");
        break;
    }
    case 'W': {
        ull id = rd(), off = rd(), n = rd();
        Buffer& b = find_range(id, off, n);
        for (ull j = 0; j < (n + 7) / 8; ++j) {
            ull w = rd();
            for (ull k = 0; k < 8 && 8 * j + k < n; ++k) {
                b.data()[off + 8 * j + k] = (unsigned char)(w >> (8 * k));
            }
        }
        printf("ok");
        break;
    }
    case 'R': {
        ull id = rd(), off = rd(), n = rd();
        Buffer& b = find_range(id, off, n);
        for (ull j = 0; j < (n + 7) / 8; ++j) {
            ull w = 0;
            for (ull k = 0; k < 8 && 8 * j + k < n; ++k) {
                w |= (ull)b.data()[off + 8 * j + k] << (8 * k);
            }
            printf(j ? " %llx" : "%llx", w);
        }
        break;
    }
    case 'M': {
        ull id = rd(), off = rd(), n = rd();
        Buffer& b = find_range(id, off, n);
        memset(b.data() + off, 0, n);
        printf("ok");
        break;
    }
    case 'L': {
        char name[64];
        if (scanf("%63s", name) != 1) {
            throw Error{"bad input"};
        }
        uint32_t grid = (uint32_t)rd(), block = (uint32_t)rd(), order = (uint32_t)rd();
        ull n = rd();
        Args a;
        for (ull i = 0; i < n; ++i) {
            char kind[4];
            if (scanf("%3s", kind) != 1) {
                throw Error{"bad input"};
            }
            Arg x;
            x.kind = kind[0];
            x.id = x.off = x.value = 0;
            if (x.kind == 'p') {
                x.id = rd();
                x.off = rd();
            } else if (x.kind == 's') {
                x.value = rd();
            } else if (x.kind == 'r') {
                ull bytes = rd();
                x.bytes.resize(bytes);
                for (ull j = 0; j < (bytes + 7) / 8; ++j) {
                    ull w = rd();
                    for (ull k = 0; k < 8 && 8 * j + k < bytes; ++k) {
                        x.bytes[8 * j + k] = (unsigned char)(w >> (8 * k));
                    }
                }
            } else {
                throw Error{"bad argument kind"};
            }
            a.list.push_back(x);
        }
        launch(name, grid, block, order, a);
        printf("ok");
        break;
    }
    case 'Q': {
        // Device functions called directly (not kernels):
        //   Q c len th... count u...   snn_poisson_count of each word u
        //   Q w seed gid count step... snn_poisson_word of each step
        char f[4];
        if (scanf("%3s", f) != 1) {
            throw Error{"bad input"};
        }
        if (f[0] == 'c') {
            std::vector<uint64_t> th(rd());
            for (size_t i = 0; i < th.size(); ++i) th[i] = rd();
            ull count = rd();
            for (ull i = 0; i < count; ++i) {
                uint32_t u = (uint32_t)rd();
                printf(i ? " %x" : "%x", snn_poisson_count(th.data(), (uint32_t)th.size(), u));
            }
        } else if (f[0] == 'w') {
            ull seed = rd(), gid = rd(), count = rd();
            for (ull i = 0; i < count; ++i) {
                printf(i ? " %x" : "%x", snn_poisson_word(seed, gid, rd()));
            }
        } else {
            throw Error{"unknown function"};
        }
        break;
    }
    default:
        throw Error{std::string("unknown command ") + op};
    }
}

int main() {
    char op[4];
    while (scanf("%3s", op) == 1) {
        try {
            command(op[0]);
        } catch (const Error& e) {
            // The rest of the command's line is skipped.
            int ch;
            while ((ch = getchar()) != EOF && ch != '\n') {
            }
            printf("err %s", e.what.c_str());
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
