/* Fused CPU kernels of ignn-lab's windowed kNN (ignn_lab/graph/kernels.py builds and loads this file; the
 * interface, shared constants and error convention are in _kernels.h).
 *
 * Everything after the GEMM of one chunk of query tiles: select the kp+1 smallest keys inside each query's
 * window, recompute the kp shortlisted distances exactly, sort by (distance, son index), certify with the
 * (kp+1)-th key's lower bound, rescan the window exactly where that fails, and write the k results. Plus the
 * bfloat16 augmented rows that feed the GEMM (ignn_lab/graph/knn_bf16.py derives the bounds).
 *
 * Exact distances use the one formula of ignn_lab.graph.knn_exact.exact_sqdist for float32: float32
 * differences and squares, summed in IGNN_LANES lanes of sequential double sums (lane j takes
 * i = j mod IGNN_LANES), combined pairwise, rounded to float32. Compile with -ffp-contract=off: a fused
 * multiply-add would change the bits.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"

int ignn_abi_version(void) { return IGNN_ABI_VERSION; }

/* The shared constants by name, so that Python can check the library it loaded against _kernels.h. */
int ignn_constant(const char *name, int64_t *value) {
    if (!strcmp(name, "ABI_VERSION")) *value = IGNN_ABI_VERSION;
    else if (!strcmp(name, "KP_MAX")) *value = IGNN_KP_MAX;
    else if (!strcmp(name, "LANES")) *value = IGNN_LANES;
    else if (!strcmp(name, "ERR_LEN")) *value = IGNN_ERR_LEN;
    else return IGNN_EINVAL;
    return IGNN_OK;
}

static int fail(char *err, int64_t err_len, int code, const char *fmt, ...) {
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, (size_t)err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

#define CHECK(cond, ...)                                       \
    do {                                                       \
        if (!(cond)) return fail(err, err_len, IGNN_EINVAL, __VA_ARGS__); \
    } while (0)

static float sqdist(const float *q, const float *s, int64_t D) {
    double acc[IGNN_LANES];
    for (int j = 0; j < IGNN_LANES; j++) acc[j] = 0.0;
    int64_t i = 0;
    for (; i + IGNN_LANES <= D; i += IGNN_LANES)
        for (int j = 0; j < IGNN_LANES; j++) {
            float d = q[i + j] - s[i + j];
            float sq = d * d;
            acc[j] += (double)sq;
        }
    for (int j = 0; i + j < D; j++) {
        float d = q[i + j] - s[i + j];
        float sq = d * d;
        acc[j] += (double)sq;
    }
    for (int w = IGNN_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] = acc[j] + acc[j + w];
    return (float)acc[0];
}

int ignn_sqdist(const float *q, const float *s, int64_t dim, float *out, char *err, int64_t err_len) {
    CHECK(q && s && out, "ignn_sqdist: a NULL buffer");
    CHECK(dim >= 0, "ignn_sqdist: dim = %lld < 0", (long long)dim);
    *out = sqdist(q, s, dim);
    return IGNN_OK;
}

int ignn_sqdist_batch(const ignn_batch_dims *d, const float *q, const float *c, float *out, char *err,
                      int64_t err_len) {
    CHECK(d && q && c && out, "ignn_sqdist_batch: a NULL argument");
    CHECK(d->rows >= 0 && d->cands >= 0 && d->dim >= 0, "ignn_sqdist_batch: negative size (rows %lld, cands %lld, "
          "dim %lld)", (long long)d->rows, (long long)d->cands, (long long)d->dim);
    CHECK(d->q_row >= 0 && d->q_cand >= 0 && d->c_row >= 0 && d->c_cand >= 0,
          "ignn_sqdist_batch: negative stride");
    for (int64_t r = 0; r < d->rows; r++)
        for (int64_t j = 0; j < d->cands; j++)
            out[r * d->cands + j] = sqdist(q + r * d->q_row + j * d->q_cand, c + r * d->c_row + j * d->c_cand, d->dim);
    return IGNN_OK;
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

/* Every size, and every index the buffers hold, against the sizes: nothing out of range reaches memory. */
static int check_refine(const ignn_refine_dims *d, const ignn_refine_buffers *b, char *err, int64_t err_len) {
    CHECK(d && b, "ignn_refine_window: a NULL argument");
    CHECK(b->keys && b->row_start && b->col_start && b->queries && b->son && b->union_base && b->out_base &&
              b->son_off && b->dist && b->idx, "ignn_refine_window: a NULL buffer");
    CHECK(d->groups >= 0, "groups = %lld < 0", (long long)d->groups);
    CHECK(d->tile_rows >= 1 && d->tile_cols >= 1, "tile %lld x %lld: both must be >= 1", (long long)d->tile_rows,
          (long long)d->tile_cols);
    CHECK(d->win_rows >= 1 && d->win_rows <= d->union_rows && d->win_cols >= 1 && d->win_cols <= d->union_cols,
          "window %lld x %lld does not fit the union %lld x %lld", (long long)d->win_rows, (long long)d->win_cols,
          (long long)d->union_rows, (long long)d->union_cols);
    CHECK(d->dim >= 1, "dim = %lld < 1", (long long)d->dim);
    CHECK(d->son_cols >= d->union_cols, "son_cols = %lld is narrower than the union (%lld columns)",
          (long long)d->son_cols, (long long)d->union_cols);
    CHECK(d->out_cols >= d->tile_cols, "out_cols = %lld is narrower than a tile (%lld columns)",
          (long long)d->out_cols, (long long)d->tile_cols);
    CHECK(d->k >= 1 && d->k <= d->shortlist && d->shortlist <= IGNN_KP_MAX,
          "need 1 <= k <= shortlist <= %d, got k = %lld, shortlist = %lld", IGNN_KP_MAX, (long long)d->k,
          (long long)d->shortlist);
    CHECK(d->k <= d->win_rows * d->win_cols, "k = %lld exceeds the window's %lld candidates", (long long)d->k,
          (long long)(d->win_rows * d->win_cols));
    CHECK(d->key_bf16 == 0 || d->key_bf16 == 1, "key_bf16 = %d: 0 or 1", d->key_bf16);
    CHECK(!d->key_bf16 || b->row_term, "bfloat16 keys need row_term (they are not lower bounds themselves)");
    CHECK(d->delta >= 0 && d->delta < 1, "delta = %g: needs 0 <= delta < 1", d->delta);
    const int64_t th = d->tile_rows, tw = d->tile_cols, ur = d->union_rows, uc = d->union_cols;
    for (int64_t g = 0; g < d->groups; g++) {
        for (int64_t a = 0; a < th; a++) {
            int64_t v = b->row_start[g * th + a];
            CHECK(v >= 0 && v + d->win_rows <= ur, "group %lld: row_start %lld puts the window outside the union",
                  (long long)g, (long long)v);
        }
        for (int64_t a = 0; a < tw; a++) {
            int64_t v = b->col_start[g * tw + a];
            CHECK(v >= 0 && v + d->win_cols <= uc, "group %lld: col_start %lld puts the window outside the union",
                  (long long)g, (long long)v);
        }
        int64_t ub = b->union_base[g], ob = b->out_base[g], so = b->son_off[g];
        CHECK(ub >= 0 && ub % d->son_cols + uc <= d->son_cols && ub + (ur - 1) * d->son_cols + uc <= d->son_count,
              "group %lld: union_base %lld puts the union outside the son (%lld rows, %lld columns)", (long long)g,
              (long long)ub, (long long)d->son_count, (long long)d->son_cols);
        CHECK(ob >= 0 && ob % d->out_cols + tw <= d->out_cols && ob + (th - 1) * d->out_cols + tw <= d->out_count,
              "group %lld: out_base %lld puts the tile outside the output (%lld rows, %lld columns)", (long long)g,
              (long long)ob, (long long)d->out_count, (long long)d->out_cols);
        CHECK(so >= 0 && so <= ub, "group %lld: son_off %lld must lie in [0, union_base %lld]", (long long)g,
              (long long)so, (long long)ub);
    }
    return IGNN_OK;
}

int ignn_refine_window(const ignn_refine_dims *d, const ignn_refine_buffers *b, int64_t *rescans_out, char *err,
                       int64_t err_len) {
    int status = check_refine(d, b, err, err_len);
    if (status != IGNN_OK) return status;
    CHECK(rescans_out, "ignn_refine_window: a NULL rescans pointer");
    const int64_t G = d->groups, th = d->tile_rows, tw = d->tile_cols, uc = d->union_cols, D = d->dim;
    const int64_t R = th * tw, NC = d->union_rows * uc, k = d->k, kp = d->shortlist, kp1 = kp + 1;
    const int64_t side_r = d->win_rows, side_c = d->win_cols, n2 = d->son_cols, m2 = d->out_cols;
    const int key_bf16 = d->key_bf16;
    const double scale = d->scale, rel = d->rel, slack = d->slack, delta = d->delta;
    const double *row_term = b->row_term;
    int64_t rescans = 0;
    pair_t sel[IGNN_KP_MAX + 1], best[IGNN_KP_MAX + 1];
    float *qt = malloc((size_t)(R * D + side_c) * sizeof(float));
    if (!qt)
        return fail(err, err_len, IGNN_ENOMEM, "could not allocate %lld floats for a tile's queries",
                    (long long)(R * D + side_c));
    float *kv = qt + R * D;
    for (int64_t g = 0; g < G; g++) {
        const float *q = b->queries + g * D * R;
        for (int64_t i = 0; i < D; i++) /* the tile's queries arrive as columns: one transpose per tile */
            for (int64_t r = 0; r < R; r++) qt[r * D + i] = q[i * R + r];
        for (int64_t r = 0; r < R; r++) {
            const float *qr = qt + r * D;
            const int64_t a = r / tw, bcol = r % tw, row = g * R + r;
            const int64_t rs = b->row_start[g * th + a], cs = b->col_start[g * tw + bcol];
            const int64_t base = row * NC;
            /* 1. the kp + 1 smallest keys in the window (ties: lower union position) */
            int64_t n = 0;
            for (int64_t y = 0; y < side_r; y++) {
                const int64_t p0 = (rs + y) * uc + cs;
                load_keys(b->keys, key_bf16, base + p0, side_c, kv);
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
                int64_t srow = b->union_base[g] + (pos / uc) * n2 + pos % uc;
                pair_t p = {sqdist(qr, b->son + srow * D, D), srow};
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
                    load_keys(b->keys, key_bf16, base + p0, side_c, kv);
                    for (int64_t x = 0; x < side_c; x++) {
                        if (!(kv[x] <= lim)) continue;
                        if (!(round_down(key_bound(kv[x], row_term, row, scale, rel, slack)) * (1 - delta) <= dk))
                            continue;
                        int64_t srow = b->union_base[g] + (rs + y) * n2 + cs + x;
                        pair_t p = {sqdist(qr, b->son + srow * D, D), srow};
                        pair_insert(best, &nb, k, p);
                    }
                }
            }
            const int64_t out = b->out_base[g] + a * m2 + bcol;
            for (int64_t j = 0; j < k; j++) {
                b->dist[out * k + j] = best[j].d;
                b->idx[out * k + j] = best[j].i - b->son_off[g];
            }
        }
    }
    free(qt);
    *rescans_out = rescans;
    return IGNN_OK;
}

static int check_bf16(const ignn_bf16_dims *d, char *err, int64_t err_len) {
    CHECK(d, "a NULL dims argument");
    CHECK(d->groups >= 0 && d->dim >= 1 && d->rows >= 0, "groups %lld, dim %lld, rows %lld: need groups >= 0, "
          "dim >= 1, rows >= 0", (long long)d->groups, (long long)d->dim, (long long)d->rows);
    CHECK(d->width >= d->dim + 6, "width = %lld: needs at least dim + 6 = %lld", (long long)d->width,
          (long long)(d->dim + 6));
    return IGNN_OK;
}

/* Candidate rows [-2S, hs, ls, 1, 1, f_up, f2_up, 0...] (width W) of G unions; S = bf16(s - c). */
int ignn_augment_union_bf16(const ignn_bf16_dims *d, const float *son, const int64_t *union_base,
                            const float *centre, uint16_t *out, char *err, int64_t err_len) {
    int status = check_bf16(d, err, err_len);
    if (status != IGNN_OK) return status;
    CHECK(son && union_base && centre && out, "ignn_augment_union_bf16: a NULL buffer");
    const int64_t G = d->groups, D = d->dim, W = d->width, ur = d->union_rows, uc = d->union_cols;
    const int64_t n2 = d->son_cols;
    CHECK(ur >= 1 && uc >= 1 && ur * uc == d->rows, "union %lld x %lld does not hold rows = %lld", (long long)ur,
          (long long)uc, (long long)d->rows);
    CHECK(n2 >= uc, "son_cols = %lld is narrower than the union (%lld columns)", (long long)n2, (long long)uc);
    for (int64_t g = 0; g < G; g++) {
        int64_t ub = union_base[g];
        CHECK(ub >= 0 && ub % n2 + uc <= n2 && ub + (ur - 1) * n2 + uc <= d->son_count,
              "group %lld: union_base %lld puts the union outside the son (%lld rows, %lld columns)", (long long)g,
              (long long)ub, (long long)d->son_count, (long long)n2);
    }
    const double shrink = d->shrink, c1 = d->c1, up = d->up;
    for (int64_t g = 0; g < G; g++) {
        const float *c = centre + g * D;
        for (int64_t y = 0; y < ur; y++)
            for (int64_t x = 0; x < uc; x++) {
                const float *s = son + (union_base[g] + y * n2 + x) * D;
                uint16_t *o = out + ((g * ur + y) * uc + x) * W;
                double lane[IGNN_LANES];
                for (int j = 0; j < IGNN_LANES; j++) lane[j] = 0.0;
                int64_t i = 0;
                for (; i + IGNN_LANES <= D; i += IGNN_LANES) /* lanes: a vectorisable sum (any order is within the bound) */
                    for (int j = 0; j < IGNN_LANES; j++) {
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
                for (int j = 0; j < IGNN_LANES; j++) acc += lane[j];
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
    return IGNN_OK;
}

/* Query rows [Q, 1, 1, hq, lq, -(2 kappa e)_up, -kappa_up, 0...] (width W) of G tiles, Q = bf16(q - c);
 * queries is G x D x R (queries as columns); row_term[g*R + r] = e^2 (1 + 2^-21) / t. */
int ignn_augment_queries_bf16(const ignn_bf16_dims *d, const float *queries, const float *centre, uint16_t *out,
                              double *row_term, char *err, int64_t err_len) {
    int status = check_bf16(d, err, err_len);
    if (status != IGNN_OK) return status;
    CHECK(queries && centre && out && row_term, "ignn_augment_queries_bf16: a NULL buffer");
    CHECK(d->t_split > 0 && d->t_split < 1, "t_split = %g: needs 0 < t < 1", d->t_split);
    const int64_t G = d->groups, D = d->dim, R = d->rows, W = d->width;
    const double shrink = d->shrink, c1 = d->c1, up = d->up, kappa_up = d->kappa_up, t_split = d->t_split;
    for (int64_t g = 0; g < G; g++) {
        const float *c = centre + g * D;
        for (int64_t r = 0; r < R; r++) {
            uint16_t *o = out + (g * R + r) * W;
            const float *qc = queries + g * D * R + r;
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
    return IGNN_OK;
}
