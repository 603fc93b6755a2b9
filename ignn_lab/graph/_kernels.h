/* The interface of ignn-lab's C kernels: the constants C and Python share, the argument structures, and the
 * error convention. ignn_lab/graph/kernels.py reads the IGNN_* constants below from this file (one definition
 * for both languages) and checks that the loaded library reports the same values.
 *
 * Every entry point returns IGNN_OK or an error code and, on error, a NUL-terminated message in err (at most
 * err_len bytes). Sizes travel in structures with named fields, so that two integers cannot trade places
 * unnoticed; the kernels check every size and every index range against those sizes before touching memory.
 */
#ifndef IGNN_KERNELS_H
#define IGNN_KERNELS_H

#include <stdint.h>

#define IGNN_ABI_VERSION 4 /* bump on any change of an entry point or structure */
#define IGNN_KP_MAX 64     /* longest shortlist the kernels keep per row */
#define IGNN_LANES 16      /* float32 distances are summed in this many float64 lanes */
#define IGNN_ERR_LEN 256   /* size of the error-message buffer Python passes */

#define IGNN_OK 0
#define IGNN_EINVAL 1 /* an argument out of range: the message says which */
#define IGNN_ENOMEM 2 /* a work buffer could not be allocated */

/* One chunk of query tiles of a windowed search (ignn_refine_window). */
typedef struct {
    int64_t groups;             /* G: query tiles in the chunk */
    int64_t tile_rows, tile_cols;   /* th, tw: queries per tile, R = th * tw */
    int64_t union_rows, union_cols; /* ur, uc: the union of a tile's windows, in son patches */
    int64_t win_rows, win_cols;     /* a query's window inside the union (the whole son grid: a global search) */
    int64_t dim;                /* D: patch-vector length */
    int64_t son_count;          /* rows of the son matrix */
    int64_t son_cols;           /* n2: son-grid width (son rows per union row step) */
    int64_t out_count;          /* rows of the outputs dist and idx */
    int64_t out_cols;           /* m2: query-grid width (output rows per tile row step) */
    int64_t k;                  /* neighbours written per query */
    int64_t shortlist;          /* kp: candidates recomputed exactly, k <= kp <= IGNN_KP_MAX */
    int32_t key_bf16;           /* keys are bfloat16 bits (1) or float32 (0) */
    double delta;               /* relative error bound of the exact distance */
    double scale, rel, slack;   /* key -> lower bound map when row_term is given (bfloat16 keys) */
} ignn_refine_dims;

typedef struct {
    const void *keys;           /* G x R x (ur*uc) */
    const int64_t *row_start;   /* G x th: window start of each tile row inside the union */
    const int64_t *col_start;   /* G x tw */
    const double *row_term;     /* G x R, or NULL: the keys are lower bounds already */
    const float *queries;       /* G x D x R: the tile's queries as columns */
    const float *son;           /* son_count x D */
    const int64_t *union_base;  /* G: son row of union cell (0, 0) */
    const int64_t *out_base;    /* G: output row of the tile's first query */
    const int64_t *son_off;     /* G: subtracted from son rows in idx (the batch item's first row) */
    float *dist;                /* out_count x k */
    int64_t *idx;               /* out_count x k */
} ignn_refine_buffers;

/* out[r*cands + j] = sqdist(q + r*q_row + j*q_cand, c + r*c_row + j*c_cand): strides in floats, each vector
 * contiguous (ignn_sqdist_batch). */
typedef struct {
    int64_t rows, cands, dim;
    int64_t q_row, q_cand, c_row, c_cand;
} ignn_batch_dims;

/* The bfloat16 augmented rows of ignn_lab/graph/knn_bf16.py (ignn_augment_union_bf16 / _queries_bf16). */
typedef struct {
    int64_t groups;             /* G */
    int64_t dim;                /* D */
    int64_t width;              /* W >= D + 6: columns of an augmented row */
    int64_t rows;               /* queries per group (queries) or ur * uc (union) */
    int64_t union_rows, union_cols, son_count, son_cols; /* union only */
    double shrink, c1, up, kappa_up, t_split;
} ignn_bf16_dims;

int ignn_abi_version(void);
int ignn_constant(const char *name, int64_t *value);
int ignn_sqdist(const float *q, const float *s, int64_t dim, float *out, char *err, int64_t err_len);
int ignn_sqdist_batch(const ignn_batch_dims *d, const float *q, const float *c, float *out, char *err,
                      int64_t err_len);
int ignn_refine_window(const ignn_refine_dims *d, const ignn_refine_buffers *b, int64_t *rescans, char *err,
                       int64_t err_len);
int ignn_augment_union_bf16(const ignn_bf16_dims *d, const float *son, const int64_t *union_base,
                            const float *centre, uint16_t *out, char *err, int64_t err_len);
int ignn_augment_queries_bf16(const ignn_bf16_dims *d, const float *queries, const float *centre, uint16_t *out,
                              double *row_term, char *err, int64_t err_len);

#endif
