/*
 * Data: datasets read from IDX (plain or .gz), CSV and NPY files into host float arrays;
 * train/validation/test splits; preprocessing fitted on the training split only, with its
 * statistics readable and writable by name for checkpoints; duplicate and leakage counts;
 * per-epoch shuffling and a batch iterator that fills caller-provided host buffers.
 *
 * Host-side only: uploading a batch is the caller's job. Splits are copies (kiln_dataset_split
 * and kiln_dataset_subset make new datasets), so every later step works on a whole dataset.
 * Randomness is Philox4x32-10 keyed by the seed: the same seed gives the same split and the
 * same epoch order on every machine. Nothing here is thread-safe; errors go to the context.
 */
#ifndef KILN_DATA_H
#define KILN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_label_kind {
    KILN_LABELS_NONE = 0,   /* no labels (inputs for prediction) */
    KILN_LABELS_CLASS = 1,  /* one int32 class index per sample, in [0, n_classes) */
    KILN_LABELS_TARGET = 2, /* f32 targets of label_shape per sample (regression, masks) */
    KILN_LABELS_AUTO = 3,   /* readers only: integer NPY labels are classes, float ones targets */
} kiln_label_kind;

/* A dataset of n samples. The library allocates it (readers, create, subset, split) and the
 * caller destroys it. Fields are public for reading; the caller may change feature and label
 * values and raise n_classes (for a split file that lacks the top classes), nothing else. */
typedef struct kiln_dataset {
    kiln_context *ctx;        /* borrowed: later calls on the dataset report errors here */
    char *name;               /* the file it came from, or the split's name, for messages */
    int64_t n;                /* samples */
    kiln_shape feature_shape; /* per sample: (1, 28, 28) for IDX images, (F,) for CSV */
    int64_t n_features;       /* elements per sample (feature_shape's count) */
    float *features;          /* (n, n_features) row-major; NaN marks a missing value */
    kiln_label_kind label_kind;
    int32_t *classes;       /* (n): CLASS only, else NULL */
    int32_t n_classes;      /* CLASS: 1 + the largest index (readers; 1 from create) */
    kiln_shape label_shape; /* TARGET: per sample, e.g. (1,) or (1, 64, 64); else ndim 0 */
    int64_t n_label_values; /* TARGET: label_shape's count; else 0 */
    float *targets;         /* (n, n_label_values): TARGET only, else NULL */
    char **feature_names;   /* (n_features) column names: CSV only, else NULL */
    char *label_name;       /* CSV: the label column's name; else NULL */
    /* Internal: the mapped prepared-data file that holds features, classes and targets
     * (kiln_prepared_get_set), or NULL when the dataset owns its arrays. */
    struct kiln__mapping *mapping;
} kiln_dataset;

/* A dataset of n samples with zeroed features and labels. feature_shape needs 1 to
 * KILN_MAX_DIMS - 1 dimensions (the batch adds one); label_shape is read for TARGET only.
 * `name` is copied. KILN_ERR_SHAPE for a bad shape, KILN_ERR_INVALID_ARGUMENT for n < 1. */
kiln_status kiln_dataset_create(kiln_context *ctx, const char *name, int64_t n,
                                const kiln_shape *feature_shape, kiln_label_kind labels,
                                const kiln_shape *label_shape, kiln_dataset **out);
void kiln_dataset_destroy(kiln_dataset *ds);

/* A copy of the samples ds->index[0..n) in that order (repeats allowed), named `name`.
 * KILN_ERR_INVALID_ARGUMENT for an index outside [0, ds->n). */
kiln_status kiln_dataset_subset(const kiln_dataset *ds, const int64_t *index, int64_t n,
                                const char *name, kiln_dataset **out);

/* KILN_ERR_SHAPE, naming both datasets and their shapes, unless `other` has the feature shape,
 * label kind and label shape of `ds` (a test file read beside a training file). */
kiln_status kiln_dataset_check_compatible(const kiln_dataset *ds, const kiln_dataset *other);

/* Number of NaN (missing) feature values. */
int64_t kiln_dataset_n_missing(const kiln_dataset *ds);

/* ---- Readers. Every error names the file and the byte offset, or line and column, and
 * what was expected; KILN_ERR_IO when a file cannot be opened or read, KILN_ERR_CORRUPT for
 * bad content. ---- */

/* IDX files (LeCun's MNIST format), plain or gzip (detected from the content), streamed with
 * zlib. Images: any IDX element type (ubyte, byte, short, int, float, double, big-endian)
 * with dims (n, d1, ...): features (1, d1, d2) for three dims (a channel axis is added), (d1,
 * ...) otherwise, values as stored (no scaling). Labels (may be NULL): one dim, an integer type,
 * values >= 0, count equal to the images'. Magic, dims, sizes, truncation and trailing bytes
 * are checked. */
kiln_status kiln_dataset_read_idx(kiln_context *ctx, const char *images_path,
                                  const char *labels_path, kiln_dataset **out);

typedef struct kiln_csv_options {
    bool header;              /* true: the first line names the columns */
    kiln_label_kind labels;   /* CLASS (integer >= 0), TARGET (a number) or NONE */
    const char *label_column; /* the label column by header name; NULL: by label_index */
    int label_index;          /* 0-based; negative counts from the end (-1: last column) */
    char delimiter;           /* ',' */
} kiln_csv_options;

/* header true, labels CLASS, label_column NULL, label_index -1, delimiter ','. */
void kiln_csv_options_init(kiln_csv_options *options);

/* A CSV file (gzip allowed): every column but the label is a feature, features (F,), names from
 * the header ("column_<k>", 1-based, without one). Fields may be double-quoted ("" is a quote;
 * a quoted field cannot span lines); spaces around fields are ignored; blank lines are
 * skipped; CRLF and a UTF-8 BOM are accepted. A feature cell that is empty, NA, N/A or NaN
 * (any case) becomes NaN. Errors name the line and column (1-based) and the column's name:
 * a row with another number of fields, a cell that is not a finite number, a missing or
 * non-integer class label, an unknown or repeated label column, no data rows. Numbers are
 * read with strtod, in the C locale's format (the library never calls setlocale). */
kiln_status kiln_dataset_read_csv(kiln_context *ctx, const char *path,
                                  const kiln_csv_options *options, kiln_dataset **out);

/* NPY files (format versions 1 to 3, gzip allowed) of dtype <f4, <f8, |u1, <i4 or <i8 in C
 * order; Fortran order, other dtypes and big-endian data are refused with the header's text.
 * Features: shape (n, ...) gives feature shape (...), or (1,) for (n,). Labels (may be NULL,
 * then `labels` is ignored): shape (n, ...); AUTO makes integer dtypes of shape (n,) or (n, 1)
 * classes and everything else targets; CLASS needs integral values >= 0 of shape (n,) or
 * (n, 1); TARGET takes shape (...) or (1,) per sample. */
kiln_status kiln_dataset_read_npy(kiln_context *ctx, const char *features_path,
                                  const char *labels_path, kiln_label_kind labels,
                                  kiln_dataset **out);

/* ---- Splits ---- */

typedef struct kiln_split_options {
    double validation; /* fraction of samples for validation, in [0, 1) */
    double test;       /* fraction for test, in [0, 1); validation + test < 1 */
    uint64_t seed;
    bool stratify; /* keep each class's proportion (within rounding); CLASS labels only */
} kiln_split_options;

/* Assigns every sample to train, validation or test: index (n = ds->n) receives the train
 * indices, then the validation ones, then the test ones, each part in ascending order;
 * counts[3] their sizes. Part sizes are round(fraction * n); stratified, each class gives
 * round(fraction * its count) by largest remainders so that the total still matches. The
 * choice within a class (or the whole set) is a Philox Fisher-Yates shuffle keyed by the seed.
 * KILN_ERR_INVALID_ARGUMENT for bad fractions, a requested part or train that would be empty,
 * or stratify without class labels. */
kiln_status kiln_dataset_split_indices(const kiln_dataset *ds, const kiln_split_options *options,
                                       int64_t *index, int64_t counts[3]);

/* Copies of the three parts, named "<ds name> [train]" and so on. *validation and *test are
 * NULL when their fraction is 0. On failure every output is NULL. */
kiln_status kiln_dataset_split(const kiln_dataset *ds, const kiln_split_options *options,
                               kiln_dataset **train, kiln_dataset **validation,
                               kiln_dataset **test);

/* ---- Preprocessing: steps fitted in order on the training split, then applied to any
 * split. Step k is fitted on the training data after steps 0..k-1. NaN (missing) values are
 * ignored when fitting and stay NaN until an imputation step. ---- */

typedef enum kiln_preprocess_kind {
    KILN_PREPROCESS_SCALE = 0,                /* x * value */
    KILN_PREPROCESS_STANDARDIZE = 1,          /* (x - mean) / std, one mean and std overall */
    KILN_PREPROCESS_STANDARDIZE_FEATURES = 2, /* (x - mean) / std per feature */
    KILN_PREPROCESS_MINMAX = 3,               /* (x - min) / (max - min) per feature */
    KILN_PREPROCESS_IMPUTE_MEAN = 4,          /* NaN -> the feature's mean */
    KILN_PREPROCESS_IMPUTE_MEDIAN = 5,        /* NaN -> the feature's median */
    KILN_PREPROCESS_IMPUTE_CONSTANT = 6,      /* NaN -> value */
    KILN_PREPROCESS_DROP_MISSING = 7,         /* drop samples with any NaN feature */
    KILN_PREPROCESS_STANDARDIZE_CHANNELS = 8, /* (x - mean) / std per channel (axis 0) */
} kiln_preprocess_kind;

typedef struct kiln_preprocess_step {
    kiln_preprocess_kind kind;
    double value; /* SCALE's factor, IMPUTE_CONSTANT's fill; finite */
    /* STANDARDIZE_CHANNELS: C, the first axis of a sample's feature shape (C, ...), so that
     * channel c holds features [c * n_features / C, (c + 1) * n_features / C); it must
     * divide n_features. Ignored by the other kinds. */
    int64_t channels;
} kiln_preprocess_step;

typedef struct kiln_preprocess kiln_preprocess;

/* A pipeline for samples of n_features values; `steps` is copied. Statistics (floats) are
 * computed in double and rounded once. std is the population standard deviation (ddof 0);
 * a std or range of 0 becomes 1 so that a constant feature maps to 0 (as scikit-learn
 * does). KILN_ERR_INVALID_ARGUMENT names a bad step. */
kiln_status kiln_preprocess_create(kiln_context *ctx, const kiln_preprocess_step *steps,
                                   size_t n_steps, int64_t n_features, kiln_preprocess **out);
void kiln_preprocess_destroy(kiln_preprocess *pp);

/* Fits every step on `train` and transforms it in place (scikit-learn's fit_transform).
 * *n_dropped (may be NULL) receives the samples DROP_MISSING removed. KILN_ERR_SHAPE for
 * another feature count; KILN_ERR_INVALID_ARGUMENT, naming the feature, when a statistic has no
 * value to come from (a feature missing in every sample) or every sample would be dropped. */
kiln_status kiln_preprocess_fit_transform(kiln_preprocess *pp, kiln_dataset *train,
                                          int64_t *n_dropped);
/* Applies the fitted steps to `ds` in place (a validation or test split, or prediction
 * inputs). KILN_ERR_INVALID_ARGUMENT when not fitted; as above otherwise. After a failure of
 * either call the dataset may be partly transformed: discard it. */
kiln_status kiln_preprocess_transform(const kiln_preprocess *pp, kiln_dataset *ds,
                                      int64_t *n_dropped);
bool kiln_preprocess_is_fitted(const kiln_preprocess *pp);

/* Statistics by name, for checkpoints: "preprocess.<step>.<kind>.<stat>" with kind scale,
 * standardize, standardize_features, standardize_channels, minmax, impute_mean, impute_median
 * or impute_constant and stat mean and std (1 value for standardize, `channels` for
 * standardize_channels, n_features otherwise), min and max, or fill (n_features each). Writing
 * every statistic of a fresh pipeline makes it fitted, with the same results as the pipeline they
 * were read from. Reads need a fitted pipeline (KILN_ERR_INVALID_ARGUMENT); KILN_ERR_NOT_FOUND
 * lists the names; KILN_ERR_SHAPE for n. */
size_t kiln_preprocess_n_stats(const kiln_preprocess *pp);
const char *kiln_preprocess_stat_name(const kiln_preprocess *pp, size_t i); /* NULL past end */
int64_t kiln_preprocess_stat_size(const kiln_preprocess *pp, size_t i);
kiln_status kiln_preprocess_read_stat(const kiln_preprocess *pp, const char *name, float *values,
                                      int64_t n);
kiln_status kiln_preprocess_write_stat(kiln_preprocess *pp, const char *name, const float *values,
                                       int64_t n);

/* ---- Duplicates and leakage. Rows are equal when every feature is (bit patterns, with
 * -0 = +0 and every NaN equal to every NaN). ---- */

/* Removes, in place, every sample equal to an earlier one in features and label (keeping the
 * first). *n_removed receives their count; *n_conflicting (may be NULL) the samples kept whose
 * features equal an earlier sample's but whose label differs. */
kiln_status kiln_dataset_remove_duplicates(kiln_dataset *ds, int64_t *n_removed,
                                           int64_t *n_conflicting);

enum { KILN_DATA_MAX_SPLITS = 4 };

typedef struct kiln_leakage_report {
    int n_splits;
    /* n_leaked[i]: samples of split i whose features occur in another split. */
    int64_t n_leaked[KILN_DATA_MAX_SPLITS];
    /* n_shared[i][j]: samples of split i whose features occur in split j (diagonal 0). */
    int64_t n_shared[KILN_DATA_MAX_SPLITS][KILN_DATA_MAX_SPLITS];
} kiln_leakage_report;

/* Counts samples whose features appear in more than one of the 1 to KILN_DATA_MAX_SPLITS
 * splits (labels ignored); the caller decides whether to warn. KILN_ERR_SHAPE when their
 * feature counts differ. */
kiln_status kiln_dataset_count_leakage(kiln_context *ctx, const kiln_dataset *const *splits,
                                       int n_splits, kiln_leakage_report *out);

/* ---- Prepared-data files: datasets saved exactly as they are in memory (samples, labels,
 * names), beside named float arrays (preprocessing statistics) and a text note, so that a
 * later process starts from data it prepared before without reading, converting or fitting
 * again. Opening maps the file instead of reading it: a dataset from it is a view of the
 * mapping, private to the process (changing its values never reaches the file), and stays
 * valid after the file is closed, replaced or removed, until it is destroyed. Two datasets
 * got from the same set of one open file share those pages (unlike splits, they are not
 * copies): change one in place and the other sees it. Like any mapping, a file shortened in
 * place by another program or a disk read error raises SIGBUS on access; the library's own
 * writers only ever rename complete files into place. The format
 * (a text header, then each array 64-byte aligned) is described at the top of
 * src/data/prepared.c. ---- */

typedef struct kiln_prepared_array {
    const char *name; /* non-empty, no newline */
    const float *values;
    int64_t n; /* >= 1 */
} kiln_prepared_array;

/* Writes sets[0..n_sets) (1 to KILN_DATA_MAX_SPLITS of them), arrays[0..n_arrays) (up to 512)
 * and `note` (may be NULL) to `path` atomically: a temporary file beside it, flushed, synced and
 * renamed. KILN_ERR_INVALID_ARGUMENT for a bad argument (a dataset whose labels disagree with
 * its label kind or class count included), KILN_ERR_IO naming the file. */
kiln_status kiln_prepared_write(kiln_context *ctx, const char *path,
                                const kiln_dataset *const *sets, size_t n_sets,
                                const kiln_prepared_array *arrays, size_t n_arrays,
                                const char *note);

typedef struct kiln_prepared kiln_prepared;

/* Maps `path`. KILN_ERR_NOT_FOUND when it does not exist, KILN_ERR_IO when it cannot be
 * opened or mapped otherwise; KILN_ERR_CORRUPT naming the
 * file and the fault when it is not a prepared-data file of this version and byte order, or
 * its header, sizes, offsets, names or class labels do not hold together. */
kiln_status kiln_prepared_open(kiln_context *ctx, const char *path, kiln_prepared **out);
void kiln_prepared_close(kiln_prepared *p);
size_t kiln_prepared_n_sets(const kiln_prepared *p);
/* A new dataset viewing set i (destroy it as any other); KILN_ERR_INVALID_ARGUMENT for i out
 * of range. */
kiln_status kiln_prepared_get_set(kiln_prepared *p, size_t i, kiln_dataset **out);
size_t kiln_prepared_n_arrays(const kiln_prepared *p);
/* Array i (its name and values live as long as `p`), or NULL out of range. */
const kiln_prepared_array *kiln_prepared_array_at(const kiln_prepared *p, size_t i);
/* The note as written ("" when it was NULL); lives as long as `p`. */
const char *kiln_prepared_note(const kiln_prepared *p);

/* A key for a prepared-data file, as 64 lowercase hex digits and a NUL in `out`: the SHA-256
 * of `text` (whatever configures the preparation), the identity of each of files[0..n_files)
 * (path, device, inode, size, modification and status-change times) and the identity (not the
 * path) of the file that holds this library's code (a shared libkiln, else the executable),
 * so that editing a data file or rebuilding Kiln gives a new key. KILN_ERR_IO naming a file that cannot be examined. */
kiln_status kiln_prepared_key(kiln_context *ctx, const char *text, const char *const *files,
                              size_t n_files, char out[65]);

/* ---- Shuffling and batches ---- */

/* order[0..n) = the permutation of 0..n-1 for (seed, epoch): a Philox Fisher-Yates shuffle,
 * a pure function of its arguments (epoch in [0, 2^32)), so a resumed run replays it. */
void kiln_shuffle_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order);

typedef struct kiln_batcher_options {
    int64_t batch_size; /* >= 1 */
    bool shuffle;       /* false: samples in dataset order every epoch */
    bool drop_last;     /* drop a final batch smaller than batch_size */
    uint64_t seed;
    /* Without drop_last: fill the rows of a final smaller batch past its samples by repeating
     * them cyclically (row r is sample r mod n_rows) instead of with zeros, so that a graph of
     * fixed batch size averages over that batch's samples only (with equal weights when
     * n_rows divides batch_size, else some count once more). */
    bool repeat_last;
} kiln_batcher_options;

/* Caller-owned host buffers for one batch of up to batch_size samples: features
 * (batch_size, n_features); classes (batch_size) for CLASS labels; targets
 * (batch_size, n_label_values) for TARGET labels. Label pointers of another kind are ignored
 * and may be NULL. */
typedef struct kiln_batch {
    float *features;
    int32_t *classes;
    float *targets;
} kiln_batch;

typedef struct kiln_batcher kiln_batcher;

/* Batches over `ds`, which is borrowed: it must outlive the batcher and keep its size. */
kiln_status kiln_batcher_create(const kiln_dataset *ds, const kiln_batcher_options *options,
                                kiln_batcher **out);
void kiln_batcher_destroy(kiln_batcher *b);
/* ceil(n / batch_size), or floor with drop_last. */
int64_t kiln_batcher_n_batches(const kiln_batcher *b);

/* Fills `batch` with batch number `index` of `epoch`: samples order[index * batch_size ...]
 * of the epoch's order. *n_rows receives the samples of the batch; rows from there to
 * batch_size are zeroed, or repeat them with repeat_last. KILN_ERR_INVALID_ARGUMENT for an index
 * outside [0, n_batches), an epoch outside [0, 2^32), a missing buffer, or a dataset whose size
 * changed. */
kiln_status kiln_batcher_fill(kiln_batcher *b, int64_t epoch, int64_t index,
                              const kiln_batch *batch, int64_t *n_rows);

#ifdef __cplusplus
}
#endif

#endif
