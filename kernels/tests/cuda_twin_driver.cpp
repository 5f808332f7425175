// Host driver for tests/cuda_twin.rs: reads commands (hex words) on stdin,
// evaluates them with the CUDA C twin compiled as plain C++, and prints the
// results (hex words), one line per command.
#include <stdio.h>

#include "philox.cuh"
#include "detmath.cuh"
#include "ziggurat.cuh"

typedef unsigned long long ull;

static ull rd() {
    ull x = 0;
    if (scanf("%llx", &x) != 1) {
        fprintf(stderr, "bad input\n");
        throw 1;
    }
    return x;
}

static double rdf() { return snn_bits_to_double(rd()); }

static SnnRng rd_stream() {
    ull seed = rd();
    ull w0 = rd(), w1 = rd(), w2 = rd();
    return snn_rng_from_raw(seed, (uint32_t)w0, (uint32_t)w1, (uint32_t)w2, 0);
}

// The ziggurat tables, loaded by the 'T' command (as the host would upload
// them to the device).
static SnnZigTables zig_tables;

static void out(ull x) { printf("%llx", x); }
static void outf(double x) { out(snn_double_to_bits(x)); }

int main() {
    char op[8];
    while (scanf("%7s", op) == 1) {
        switch (op[0]) {
        case 'P': {
            SnnU32x4 c;
            for (int i = 0; i < 4; ++i) c.v[i] = (uint32_t)rd();
            uint32_t k0 = (uint32_t)rd(), k1 = (uint32_t)rd();
            SnnU32x4 r = snn_philox4x32_10(c, k0, k1);
            printf("%x %x %x %x", r.v[0], r.v[1], r.v[2], r.v[3]);
            break;
        }
        case 'L': outf(snn_ln(rdf())); break;
        case 'E': outf(snn_exp(rdf())); break;
        case 'Q': outf(snn_ln_1p(rdf())); break;
        case 'F': outf(snn_ln_factorial(rdf())); break;
        case 'R': {
            SnnRng r = rd_stream();
            ull kind = rd(), arg = rd(), count = rd();
            for (ull i = 0; i < count; ++i) {
                switch (kind) {
                case 0: out(snn_rng_next_u32(&r)); break;
                case 1: out(snn_rng_next_u64(&r)); break;
                case 2: out(snn_rng_below(&r, arg)); break;
                case 3: outf(snn_rng_open01(&r)); break;
                case 4: outf(snn_rng_open_pm1(&r)); break;
                case 5: outf(snn_rng_normal(&r)); break;
                default: {
                    double a, b;
                    snn_rng_normal2(&r, &a, &b);
                    outf(a);
                    printf(" ");
                    outf(b);
                    break;
                }
                }
                printf(" ");
            }
            out(snn_rng_next_u32(&r));
            break;
        }
        case 'B': {
            SnnRng r = rd_stream();
            ull n = rd();
            double p = rdf();
            out(snn_binomial(&r, n, p));
            printf(" ");
            out(snn_rng_next_u32(&r));
            break;
        }
        case 'O': case 'S': case 'G': {
            SnnRng r = rd_stream();
            double x = rdf();
            ull k = op[0] == 'O' ? snn_poisson(&r, x)
                  : op[0] == 'S' ? snn_poisson_small(&r, x)
                                 : snn_geometric_skip(&r, x);
            out(k);
            printf(" ");
            out(snn_rng_next_u32(&r));
            break;
        }
        case 'T': {
            // x[257], r[256], f[257] as in ZigguratTables::to_flat.
            for (int i = 0; i <= SNN_ZIG_LAYERS; ++i) zig_tables.x[i] = rdf();
            for (int i = 0; i < SNN_ZIG_LAYERS; ++i) zig_tables.r[i] = rdf();
            for (int i = 0; i <= SNN_ZIG_LAYERS; ++i) zig_tables.f[i] = rdf();
            printf("ok");
            break;
        }
        case 'Z': {
            SnnRng r = rd_stream();
            ull count = rd();
            for (ull i = 0; i < count; ++i) {
                outf(snn_normal_zig(&zig_tables, &r));
                printf(" ");
            }
            out(snn_rng_next_u32(&r));
            break;
        }
        default:
            fprintf(stderr, "unknown op %s\n", op);
            return 2;
        }
        printf("\n");
    }
    return 0;
}
