/*
 * gen_tabular: writes the small tabular data sets of models/data/ (the tabular model configs
 * train on them): a regression set (5 features, a linear target plus Gaussian-like noise of
 * standard deviation 0.1) and a 3-class classification set (Gaussian-like clusters that a
 * linear model separates at about 97%), each as a training file with missing cells (empty,
 * NA, NaN) and exact duplicate rows, and a clean test file. Integer arithmetic only (a
 * splitmix64 generator, values in thousandths, noise as a sum of 12 uniforms): the output is
 * the same bytes on every machine, which the gen_tabular ctest checks against the tree.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    MAX_COLUMNS = 8,
    MISSING_PER_MILLE = 30, /* rows of a training file with one missing feature cell */
    DUPLICATE_EVERY = 50,   /* a training file repeats an earlier complete row this often */
};

typedef struct rng {
    uint64_t state;
} rng;

/* splitmix64 (Steele, Lea and Flood, 2014). */
static uint64_t next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* An integer in [0, m). */
static int64_t below(rng *r, int64_t m)
{
    return (int64_t)((next(r) >> 11) % (uint64_t)m);
}

/* Noise of mean 0 and standard deviation `sd_milli` thousandths: the Irwin-Hall sum of 12
 * uniforms on [0, 1) minus 6 has variance 1 and is close to a standard normal. */
static int64_t noise(rng *r, int64_t sd_milli)
{
    int64_t sum = 0; /* millionths */
    for (int i = 0; i < 12; i++)
        sum += below(r, 1000000);
    return (sum - 6000000) * sd_milli / 1000000;
}

/* One data row: features and label in thousandths (the label of a class set is its index). */
typedef struct row {
    int64_t value[MAX_COLUMNS];
} row;

typedef struct set {
    const char *name;    /* file name stem: NAME_train.csv, NAME_test.csv */
    const char *header;  /* the CSV header line */
    int n_features;      /* the label follows them */
    int n_train, n_test; /* rows drawn (the training file adds its duplicates) */
    bool classes;        /* the label is a class index, written as an integer */
    void (*draw)(rng *, row *);
} set;

/* Regression: x_i uniform on [-5, 5], y = 4 + 1.5 x1 - 2 x2 + 0.75 x3 + 3 x4 - 1.25 x5 + e,
 * e of standard deviation 0.1 (variance 0.01). */
static void draw_regression(rng *r, row *out)
{
    static const int64_t WEIGHT[5] = {1500, -2000, 750, 3000, -1250}; /* thousandths */
    int64_t y = 4000000;                                              /* millionths */
    for (int i = 0; i < 5; i++) {
        out->value[i] = below(r, 10001) - 5000;
        y += WEIGHT[i] * out->value[i];
    }
    y += noise(r, 100) * 1000;
    out->value[5] = (y >= 0 ? y + 500 : y - 500) / 1000; /* rounded to thousandths */
}

/* Classification: class k in {0, 1, 2} uniformly; features 1 and 2 are the class centre, on
 * a circle of radius 2.5 (pairwise 4.33 apart), plus unit noise; features 3 and 4 are unit
 * noise that carries no information. Each pair of centres lies 2.17 noise standard
 * deviations from the boundary between them. */
static void draw_classification(rng *r, row *out)
{
    static const int64_t CENTRE[3][2] = {{0, 2500}, {-2165, -1250}, {2165, -1250}};
    int64_t k = below(r, 3);
    for (int i = 0; i < 4; i++)
        out->value[i] = (i < 2 ? CENTRE[k][i] : 0) + noise(r, 1000);
    out->value[4] = k;
}

static void write_milli(FILE *f, int64_t v)
{
    int64_t a = v < 0 ? -v : v;
    fprintf(f, "%s%lld.%03lld", v < 0 ? "-" : "", (long long)(a / 1000), (long long)(a % 1000));
}

static void write_row(FILE *f, const set *s, const row *x, int missing)
{
    static const char *const MARKS[] = {"", "NA", "NaN"};
    for (int i = 0; i <= s->n_features; i++) {
        if (i > 0)
            fputc(',', f);
        if (i == s->n_features && s->classes)
            fprintf(f, "%lld", (long long)x->value[i]);
        else if (i == missing % MAX_COLUMNS)
            fputs(MARKS[missing / MAX_COLUMNS], f);
        else
            write_milli(f, x->value[i]);
    }
    fputc('\n', f);
}

/* Writes DIR/NAME_PART.csv: n rows drawn from `r`; a training file also gets missing cells
 * and duplicates of earlier complete rows. Returns 0, or 1 after a message. */
static int write_file(const char *dir, const set *s, bool train, rng *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s.csv", dir, s->name, train ? "train" : "test");
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "gen_tabular: cannot write %s\n", path);
        return 1;
    }
    static row complete[4096];
    int n_complete = 0, n = train ? s->n_train : s->n_test;
    fprintf(f, "%s\n", s->header);
    for (int i = 0; i < n; i++) {
        row x;
        memset(&x, 0, sizeof x);
        s->draw(r, &x);
        int missing = -1; /* column + MAX_COLUMNS * marker, or -1 */
        if (train && below(r, 1000) < MISSING_PER_MILLE)
            missing = (int)below(r, s->n_features) + MAX_COLUMNS * (i % 3);
        write_row(f, s, &x, missing);
        if (missing < 0 && n_complete < (int)(sizeof complete / sizeof complete[0]))
            complete[n_complete++] = x;
        if (train && i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1)
            write_row(f, s, &complete[below(r, n_complete)], -1);
    }
    int failed = ferror(f);
    failed |= fclose(f);
    if (failed != 0)
        fprintf(stderr, "gen_tabular: error writing %s\n", path);
    return failed != 0;
}

int main(int argc, char **argv)
{
    static const set SETS[] = {
        {"tabular_regression", "x1,x2,x3,x4,x5,y", 5, 1200, 400, false, draw_regression},
        {"tabular_classification", "f1,f2,f3,f4,class", 4, 1200, 600, true, draw_classification},
    };
    if (argc != 2) {
        fprintf(stderr, "usage: gen_tabular DIR\n  writes DIR/tabular_{regression,"
                        "classification}_{train,test}.csv (the files of models/data/)\n");
        return 2;
    }
    for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++) {
        rng r = {0x6B696C6E00000000u + k}; /* "kiln" and the set's index */
        if (write_file(argv[1], &SETS[k], true, &r) != 0 ||
            write_file(argv[1], &SETS[k], false, &r) != 0)
            return 1;
    }
    return 0;
}
