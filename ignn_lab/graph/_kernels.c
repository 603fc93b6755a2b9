/* Fused CPU kernels of ignn-lab's windowed kNN (ignn_lab/graph/kernels.py builds and loads this file).
 *
 * Everything after the GEMM of one chunk of query tiles: select the kp+1 smallest keys inside each query's
 * window, recompute the kp shortlisted distances exactly, sort by (distance, son index), certify with the
 * (kp+1)-th key's lower bound, rescan the window exactly where that fails, and write the k results. Plus the
 * bfloat16 augmented rows that feed the GEMM (ignn_lab/graph/knn_bf16.py derives the bounds).
 *
 * Exact distances use the one formula of ignn_lab.graph.knn_exact.exact_sqdist for float32: float32
 * differences and squares, summed in 16 lanes of sequential double sums (lane j takes i = j mod 16),
 * combined pairwise (j + 8, j + 4, j + 2, j + 1), rounded to float32. Compile with -ffp-contract=off.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define KP_MAX 64

int ignn_abi_version(void) { return 3; }

static float sqdist(const float *q, const float *s, int64_t D) {
    double acc[LANES];
    for (int j = 0; j < LANES; j++) acc[j] = 0.0;
    int64_t i = 0;
    for (; i + LANES <= D; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float d = q[i + j] - s[i + j];
            float sq = d * d;
            acc[j] += (double)sq;
        }
    for (int j = 0; i + j < D; j++) {
        float d = q[i + j] - s[i + j];
        float sq = d * d;
        acc[j] += (double)sq;
    }
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] = acc[j] + acc[j + w];
    return (float)acc[0];
}

float ignn_sqdist(const float *q, const float *s, int64_t D) { return sqdist(q, s, D); }

/* out[r*K + j] = sqdist(q + r*qsr + j*qsk, c + r*csr + j*csk): strides in floats, vectors contiguous. */
void ignn_sqdist_batch(const float *q, int64_t qsr, int64_t qsk, const float *c, int64_t csr, int64_t csk,
                       int64_t R, int64_t K, int64_t D, float *out) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < K; j++) out[r * K + j] = sqdist(q + r * qsr + j * qsk, c + r * csr + j * csk, D);
}

static inline float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even (finite inputs). */
static inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* A float32 value ≤ x (x finite or +inf). */
static inline float round_down(double x) {
    if (isinf(x)) return (float)x;
    return (float)(x - fabs(x) * 0x1p-22);
}

typedef struct {
    float d;
    int64_t i;
} pair_t;

static inline int pair_less(pair_t a, pair_t b) { return a.d < b.d || (a.d == b.d && a.i < b.i); }

/* Insert p into the sorted list l of length *n (capacity cap), keeping the cap smallest pairs. */
static inline void pair_insert(pair_t *l, int64_t *n, int64_t cap, pair_t p) {
    int64_t m = *n;
    if (m == cap) {
        if (!pair_less(p, l[m - 1])) return;
        m--;
    }
    int64_t j = m;
    while (j > 0 && pair_less(p, l[j - 1])) {
        l[j] = l[j - 1];
        j--;
    }
    l[j] = p;
    *n = m + 1;
}

/* The lower bound of the true distance that a key proves (keys are bounds themselves when row_term is NULL). */
static inline double key_bound(double v, const double *row_term, int64_t row, double scale, double rel,
                               double slack) {
    if (!row_term) return v;
    return scale * (v - rel * fabs(v)) - row_term[row] - slack;
}

/*
 * One chunk of G query tiles (th x tw queries each, R = th*tw), each against the ur x uc union of its windows.
 *   keys: G x R x (ur*uc), float32 (key_bf16 = 0) or bfloat16 bits (key_bf16 = 1); smaller is nearer.
 *   rrel, crel: G x th and G x tw, window start of each tile row / column inside the union; side_r x side_c: the
 *   window (rows x columns; the whole son grid for a global search).
 *   row_term, scale, rel, slack: the key -> lower-bound map (row_term NULL: keys are lower bounds already).
 *   q: G x D x R queries (as columns); son: son patch rows (D floats each); union_base[g]: son row of union cell (0, 0);
 *   n2: son-grid width (son rows per union row step).
 *   Output row of query (a, b) of tile g: out_base[g] + a*m2 + b; idx written as son row - son_off[g].
 * Returns the number of rows that needed the exact rescan.
 */
/* Keys [p0, p0 + n) as floats (n <= the window width). */
static inline void load_keys(const void *keys, int key_bf16, int64_t p0, int64_t n, float *out) {
    if (key_bf16) {
        const uint16_t *kb = (const uint16_t *)keys + p0;
        for (int64_t x = 0; x < n; x++) out[x] = bf16_to_float(kb[x]);
    } else {
        memcpy(out, (const float *)keys + p0, (size_t)n * sizeof(float));
    }
}

/* The largest key whose lower bound can be <= limit (a superset test; the exact test follows). */
static double key_limit(double limit, const double *row_term, int64_t row, double scale, double rel,
                        double slack) {
    if (!row_term) return limit + fabs(limit) * 0x1p-20;
    double y = (limit + row_term[row] + slack) / scale; /* v - rel|v| <= y */
    double v = y >= 0 ? y / (1 - rel) : y / (1 + rel);
    return v + fabs(v) * 0x1p-20;
}

int64_t ignn_refine_window(const void *keys, int key_bf16, int64_t G, int64_t th, int64_t tw, int64_t ur,
                           int64_t uc, const int64_t *rrel, const int64_t *crel, int64_t side_r, int64_t side_c,
                           const double *row_term, double scale, double rel, double slack, const float *q,
                           int64_t D, const float *son, int64_t n2, const int64_t *union_base, int64_t k,
                           int64_t kp, double delta, float *dist, int64_t *idx, int64_t m2,
                           const int64_t *out_base, const int64_t *son_off) {
    const int64_t R = th * tw, NC = ur * uc, kp1 = kp + 1;
    int64_t rescans = 0;
    pair_t sel[KP_MAX + 1], best[KP_MAX + 1];
    float *qt = malloc((size_t)(R * D + side_c) * sizeof(float));
    if (!qt) return -1;
    float *kv = qt + R * D;
    for (int64_t g = 0; g < G; g++) {
        for (int64_t i = 0; i < D; i++) /* the tile's queries arrive as columns: one transpose per tile */
            for (int64_t r = 0; r < R; r++) qt[r * D + i] = q[(g * D + i) * R + r];
        for (int64_t r = 0; r < R; r++) {
            const float *qr = qt + r * D;
            const int64_t a = r / tw, b = r % tw, row = g * R + r;
            const int64_t rs = rrel[g * th + a], cs = crel[g * tw + b];
            const int64_t base = row * NC;
            /* 1. the kp + 1 smallest keys in the window (ties: lower union position) */
            int64_t n = 0;
            for (int64_t y = 0; y < side_r; y++) {
                const int64_t p0 = (rs + y) * uc + cs;
                load_keys(keys, key_bf16, base + p0, side_c, kv);
                if (n == kp1) { /* most rows of keys hold nothing below the current (kp+1)-th: count first */
                    const float worst = sel[kp].d;
                    int below = 0;
                    for (int64_t x = 0; x < side_c; x++) below += kv[x] < worst;
                    if (!below) continue;
                }
                for (int64_t x = 0; x < side_c; x++) {
                    if (n == kp1 && !(kv[x] < sel[kp].d)) continue;
                    pair_t p = {kv[x], p0 + x};
                    pair_insert(sel, &n, kp1, p);
                }
            }
            double excluded = n == kp1 ? key_bound(sel[kp].d, row_term, row, scale, rel, slack) : INFINITY;
            const int64_t m = n < kp ? n : kp;
            /* 2. exact distances of the shortlist, sorted by (distance, son row) */
            int64_t nb = 0;
            for (int64_t j = 0; j < m; j++) {
                int64_t pos = sel[j].i;
                int64_t srow = union_base[g] + (pos / uc) * n2 + pos % uc;
                pair_t p = {sqdist(qr, son + srow * D, D), srow};
                pair_insert(best, &nb, k, p);
            }
            /* 3. certified unless an excluded candidate could be nearer or tied; else rescan the window */
            if (!(round_down(excluded) * (1 - delta) > best[k - 1].d)) {
                rescans++;
                const float dk = best[k - 1].d;
                const float lim = (float)key_limit((double)dk / (1 - delta), row_term, row, scale, rel, slack);
                nb = 0;
                for (int64_t y = 0; y < side_r; y++) {
                    const int64_t p0 = (rs + y) * uc + cs;
                    load_keys(keys, key_bf16, base + p0, side_c, kv);
                    for (int64_t x = 0; x < side_c; x++) {
                        if (!(kv[x] <= lim)) continue;
                        if (!(round_down(key_bound(kv[x], row_term, row, scale, rel, slack)) * (1 - delta) <= dk))
                            continue;
                        int64_t srow = union_base[g] + (rs + y) * n2 + cs + x;
                        pair_t p = {sqdist(qr, son + srow * D, D), srow};
                        pair_insert(best, &nb, k, p);
                    }
                }
            }
            const int64_t out = out_base[g] + a * m2 + b;
            for (int64_t j = 0; j < k; j++) {
                dist[out * k + j] = best[j].d;
                idx[out * k + j] = best[j].i - son_off[g];
            }
        }
    }
    free(qt);
    return rescans;
}

/* Candidate rows [-2S, hs, ls, 1, 1, f_up, f2_up, 0...] (width W) of G unions; S = bf16(s - c). */
void ignn_augment_union_bf16(const float *son, int64_t D, int64_t n2, int64_t G, int64_t ur, int64_t uc,
                             const int64_t *union_base, const float *centre, double shrink, double c1,
                             double up, uint16_t *out, int64_t W) {
    for (int64_t g = 0; g < G; g++) {
        const float *c = centre + g * D;
        for (int64_t y = 0; y < ur; y++)
            for (int64_t x = 0; x < uc; x++) {
                const float *s = son + (union_base[g] + y * n2 + x) * D;
                uint16_t *o = out + ((g * ur + y) * uc + x) * W;
                double lane[LANES];
                for (int j = 0; j < LANES; j++) lane[j] = 0.0;
                int64_t i = 0;
                for (; i + LANES <= D; i += LANES) /* lanes: a vectorisable sum (any order is within the bound) */
                    for (int j = 0; j < LANES; j++) {
                        float t = 2.0f * c[i + j] - 2.0f * s[i + j]; /* both products exact: one rounding */
                        uint16_t h = float_to_bf16(t);
                        float hf = bf16_to_float(h);
                        o[i + j] = h;
                        lane[j] += (double)hf * (double)hf;
                    }
                for (int j = 0; i + j < D; j++) {
                    float t = 2.0f * c[i + j] - 2.0f * s[i + j];
                    uint16_t h = float_to_bf16(t);
                    float hf = bf16_to_float(h);
                    o[i + j] = h;
                    lane[j] += (double)hf * (double)hf;
                }
                double acc = 0.0;
                for (int j = 0; j < LANES; j++) acc += lane[j];
                double norm2 = acc / 4; /* ||S||^2, S = -h/2 */
                float ns = (float)(norm2 * shrink);
                uint16_t hs = float_to_bf16(ns);
                double f = c1 * sqrt(norm2);
                o[D] = hs;
                o[D + 1] = float_to_bf16(ns - bf16_to_float(hs));
                o[D + 2] = 0x3F80; /* 1.0 */
                o[D + 3] = 0x3F80;
                o[D + 4] = float_to_bf16((float)(f * up));
                o[D + 5] = float_to_bf16((float)(f * f * up));
                for (int64_t i = D + 6; i < W; i++) o[i] = 0;
            }
    }
}

/* Query rows [Q, 1, 1, hq, lq, -(2 kappa e)_up, -kappa_up, 0...] (width W) of G tiles, Q = bf16(q - c);
 * q is G x D x R (queries as columns); row_term[g*R + r] = e^2 (1 + 2^-21) / t. */
void ignn_augment_queries_bf16(const float *q, int64_t D, int64_t G, int64_t R, const float *centre,
                               double shrink, double c1, double up, double kappa_up, double t_split,
                               uint16_t *out, int64_t W, double *row_term) {
    for (int64_t g = 0; g < G; g++) {
        const float *c = centre + g * D;
        for (int64_t r = 0; r < R; r++) {
            uint16_t *o = out + (g * R + r) * W;
            const float *qc = q + g * D * R + r;
            double acc = 0.0;
            for (int64_t i = 0; i < D; i++) {
                float t = qc[i * R] - c[i];
                uint16_t h = float_to_bf16(t);
                float hf = bf16_to_float(h);
                o[i] = h;
                acc += (double)hf * (double)hf;
            }
            float nq = (float)(acc * shrink);
            uint16_t hq = float_to_bf16(nq);
            double e = c1 * sqrt(acc);
            o[D] = 0x3F80;
            o[D + 1] = 0x3F80;
            o[D + 2] = hq;
            o[D + 3] = float_to_bf16(nq - bf16_to_float(hq));
            o[D + 4] = float_to_bf16((float)(2 * kappa_up * e * up)) | 0x8000u;
            o[D + 5] = float_to_bf16((float)kappa_up) | 0x8000u;
            for (int64_t i = D + 6; i < W; i++) o[i] = 0;
            row_term[g * R + r] = e * e * (1 + 0x1p-21) / t_split;
        }
    }
}
