/*
 * `kiln train`'s output: the run directory (config.yaml, log.jsonl, log.csv and plot.svg
 * (train_plot.c), confusion.csv, each written whole to a temporary file and renamed, so a reader
 * never sees half a file), the epoch lines on stdout, a throttled progress line on stderr when it
 * is a terminal, and the test split's confusion matrix.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trainer.h"

double train_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

kiln_status train_make_dirs(const char *dir, config_error *err)
{
    char path[CONFIG_MAX_PATH];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return train_error(err, KILN_ERR_INVALID_ARGUMENT, "run directory too long: %s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return train_error(err, KILN_ERR_IO, "cannot create directory %s: %s", path,
                               strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    return KILN_OK;
}

kiln_status train_write_atomic(const char *path, const char *text, size_t length, config_error *err)
{
    char tmp[CONFIG_MAX_PATH + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return train_error(err, KILN_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    bool ok = fwrite(text, 1, length, f) == length;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return train_error(err, KILN_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return KILN_OK;
}

kiln_status train_write_text(const char *dir, const char *name, train_text *text,
                             config_error *err)
{
    kiln_status rc = KILN_OK;
    if (text->failed) {
        rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory writing %s", name);
    } else {
        char path[CONFIG_MAX_PATH + 64];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = train_write_atomic(path, text->data, text->length, err);
    }
    free(text->data);
    memset(text, 0, sizeof *text);
    return rc;
}

kiln_status train_log_open(train_log *log, const char *dir, bool quiet, config_error *err)
{
    memset(log, 0, sizeof *log);
    snprintf(log->dir, sizeof log->dir, "%s", dir);
    log->quiet = quiet;
    log->progress = isatty(STDERR_FILENO) != 0;
    log->plain = getenv("NO_COLOR") != NULL && getenv("NO_COLOR")[0] != '\0';
    return train_make_dirs(dir, err);
}

kiln_status train_log_write_config(const train_log *log, const config *cfg, config_error *err)
{
    char *text = NULL;
    kiln_status rc = config_write_string(cfg, &text, err);
    if (rc != KILN_OK)
        return rc;
    char path[CONFIG_MAX_PATH + 32];
    snprintf(path, sizeof path, "%s/config.yaml", log->dir);
    rc = train_write_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

void train_log_close(train_log *log)
{
    free(log->history);
    log->history = NULL;
    log->n_history = log->capacity = 0;
}

void train_append(train_text *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list args;
        va_start(args, fmt);
        size_t room = b->capacity - b->length;
        int n = vsnprintf(b->data != NULL ? b->data + b->length : NULL, room, fmt, args);
        va_end(args);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < room) {
            b->length += (size_t)n;
            return;
        }
        size_t capacity = 2 * b->capacity + (size_t)n + 256;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
}

/* JSON has no NaN or infinity: those are written as null. */
static void append_number(train_text *b, double v, bool json)
{
    if (isfinite(v))
        train_append(b, "%.9g", v);
    else
        train_append(b, "%s", json ? "null" : "nan");
}

/* Reads `path` whole into a malloc'd string; *out NULL when it does not exist. */
static kiln_status read_text(const char *path, char **out, config_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT
                   ? KILN_OK
                   : train_error(err, KILN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    train_text b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        train_append(&b, "%.*s", (int)n, chunk);
    bool ok = !ferror(f);
    fclose(f);
    if (!ok || b.failed) {
        free(b.data);
        return train_error(err, b.failed ? KILN_ERR_NO_MEMORY : KILN_ERR_IO, "cannot read %s",
                           path);
    }
    if (b.data == NULL)
        b.data = calloc(1, 1);
    *out = b.data;
    return b.data != NULL ? KILN_OK : train_error(err, KILN_ERR_NO_MEMORY, "out of memory");
}

static kiln_status grow_history(train_log *log, config_error *err)
{
    if (log->n_history < log->capacity)
        return KILN_OK;
    int64_t capacity = 2 * log->capacity + 16;
    train_epoch_values *grown = realloc(log->history, (size_t)capacity * sizeof *grown);
    if (grown == NULL)
        return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the log");
    log->history = grown;
    log->capacity = capacity;
    return KILN_OK;
}

/* Splits `line` at commas in place: fields[i] points into it. Returns the count, or -1 when
 * there are more than `capacity`. */
static int split_csv_line(char *line, char **fields, int capacity)
{
    int n = 0;
    for (char *p = line;; p++) {
        if (n == capacity)
            return -1;
        fields[n++] = p;
        p += strcspn(p, ",");
        if (*p == '\0')
            return n;
        *p = '\0';
    }
}

/* One row of log.csv as written by write_logs: epoch, the named values, lr, seconds. */
static bool parse_csv_row(char *line, char *const *names, int n_names, train_epoch_values *v)
{
    char *fields[TRAIN_MAX_VALUES + 3];
    if (split_csv_line(line, fields, TRAIN_MAX_VALUES + 3) != n_names + 3)
        return false;
    double numbers[TRAIN_MAX_VALUES + 3] = {0};
    for (int i = 0; i < n_names + 3; i++) {
        char *end = NULL;
        numbers[i] = strtod(fields[i], &end);
        if (end == fields[i] || *end != '\0')
            return false;
    }
    memset(v, 0, sizeof *v);
    v->epoch = (int64_t)numbers[0] - 1;
    v->n = n_names;
    for (int i = 0; i < n_names; i++) {
        snprintf(v->names[i], TRAIN_MAX_NAME, "%s", names[i]);
        v->values[i] = numbers[1 + i];
    }
    v->lr = numbers[n_names + 1];
    v->seconds = numbers[n_names + 2];
    return v->epoch >= 0;
}

kiln_status train_log_resume(train_log *log, int64_t n_epochs, config_error *err)
{
    char path[CONFIG_MAX_PATH + 32];
    snprintf(path, sizeof path, "%s/log.csv", log->dir);
    char *text = NULL;
    kiln_status rc = read_text(path, &text, err);
    if (rc != KILN_OK || text == NULL)
        return rc;
    char *names[TRAIN_MAX_VALUES + 3];
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    int n_names = line != NULL ? split_csv_line(line, names, TRAIN_MAX_VALUES + 3) - 3 : -1;
    if (n_names < 0 || strcmp(names[0], "epoch") != 0)
        rc = train_error(err, KILN_ERR_CORRUPT, "%s: the header is not kiln's", path);
    for (int64_t e = 0; e < n_epochs && rc == KILN_OK; e++) {
        line = strtok_r(NULL, "\n", &save);
        rc = grow_history(log, err);
        if (rc == KILN_OK &&
            (line == NULL || !parse_csv_row(line, names + 1, n_names, &log->history[e]) ||
             log->history[e].epoch != e))
            rc = train_error(err, KILN_ERR_CORRUPT,
                             "%s: expected a line for each of the %lld epochs done, as kiln "
                             "writes them",
                             path, (long long)n_epochs);
        if (rc == KILN_OK)
            log->n_history++;
    }
    free(text);
    return rc;
}

static kiln_status write_logs(const train_log *log, config_error *err)
{
    train_text json = {0}, csv = {0};
    const train_epoch_values *first = &log->history[0];
    train_append(&csv, "epoch");
    for (int i = 0; i < first->n; i++)
        train_append(&csv, ",%s", first->names[i]);
    train_append(&csv, ",lr,seconds\n");
    for (int64_t e = 0; e < log->n_history; e++) {
        const train_epoch_values *v = &log->history[e];
        train_append(&json, "{\"epoch\": %lld", (long long)v->epoch + 1);
        train_append(&csv, "%lld", (long long)v->epoch + 1);
        for (int i = 0; i < v->n; i++) {
            train_append(&json, ", \"%s\": ", v->names[i]);
            append_number(&json, v->values[i], true);
            train_append(&csv, ",");
            append_number(&csv, v->values[i], false);
        }
        train_append(&json, ", \"lr\": %.6g", v->lr);
        train_append(&json, ", \"seconds\": %.3f}\n", v->seconds);
        train_append(&csv, ",%.6g,%.3f\n", v->lr, v->seconds);
    }
    kiln_status rc = KILN_OK;
    if (json.failed || csv.failed)
        rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory writing the logs");
    char path[CONFIG_MAX_PATH + 32];
    if (rc == KILN_OK) {
        snprintf(path, sizeof path, "%s/log.jsonl", log->dir);
        rc = train_write_atomic(path, json.data, json.length, err);
    }
    if (rc == KILN_OK) {
        snprintf(path, sizeof path, "%s/log.csv", log->dir);
        rc = train_write_atomic(path, csv.data, csv.length, err);
    }
    free(json.data);
    free(csv.data);
    return rc;
}

kiln_status train_log_epoch(train_log *log, const train_epoch_values *values, int64_t n_epochs,
                            config_error *err)
{
    train_log_progress_end(log);
    kiln_status rc = grow_history(log, err);
    if (rc != KILN_OK)
        return rc;
    log->history[log->n_history++] = *values;
    if (!log->quiet) {
        printf("epoch %lld/%lld", (long long)values->epoch + 1, (long long)n_epochs);
        for (int i = 0; i < values->n; i++)
            printf("  %s %.4g", values->names[i], values->values[i]);
        printf("  lr %.4g  %.1f s\n", values->lr, values->seconds);
        fflush(stdout);
    }
    rc = write_logs(log, err);
    return rc == KILN_OK ? train_plot_write(log, err) : rc;
}

void train_log_progress_end(train_log *log)
{
    if (log->progress && log->last_progress > 0)
        fputs(log->plain ? "\r                                                                  "
                           "            \r"
                         : "\r\033[K",
              stderr);
    log->last_progress = 0;
}

bool train_log_progress_due(const train_log *log)
{
    return log->progress && train_now() - log->last_progress >= 0.2;
}

void train_log_progress(train_log *log, int64_t epoch, int64_t n_epochs, int64_t batch,
                        int64_t n_batches, double loss, const char *metrics)
{
    double now = train_now();
    if (log->first_step_end <= 0)
        log->first_step_end = now;
    if (batch <= 1 || log->epoch_start <= 0)
        log->epoch_start = now;
    if (!train_log_progress_due(log))
        return;
    log->last_progress = now;
    double eta =
        batch > 0 ? (now - log->epoch_start) * (double)(n_batches - batch) / (double)batch : 0;
    enum { BAR = 20 };
    char bar[BAR + 1];
    int filled = n_batches > 0 ? (int)(BAR * batch / n_batches) : 0;
    for (int i = 0; i < BAR; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : '.';
    bar[BAR] = '\0';
    char eta_text[32] = "--";
    if (batch > 1)
        snprintf(eta_text, sizeof eta_text, "%.0f s", eta);
    fprintf(stderr, "\repoch %lld/%lld  %lld/%lld [%s] ETA %s  loss %.4g%s%s", (long long)epoch + 1,
            (long long)n_epochs, (long long)batch, (long long)n_batches, bar, eta_text, loss,
            metrics != NULL ? metrics : "", log->plain ? " " : "\033[K");
    fflush(stderr);
}

/* ---- the test split's confusion matrix ---- */

enum { MAX_PRINTED_CLASSES = 20 };

static int digits_of(int64_t v)
{
    int n = 1;
    for (; v >= 10; v /= 10)
        n++;
    return n;
}

void train_confusion_print(FILE *out, const train_result *r)
{
    int64_t c = r->n_classes;
    if (r->confusion == NULL)
        return;
    if (c > MAX_PRINTED_CLASSES) {
        fprintf(out, "confusion: %lld classes, too many to print\n", (long long)c);
        return;
    }
    int64_t most = c - 1;
    for (int64_t i = 0; i < c * c; i++)
        most = r->confusion[i] > most ? r->confusion[i] : most;
    int width = digits_of(most) + 1, label = digits_of(c - 1) + 1;
    fprintf(out, "confusion (rows: true class, columns: predicted):\n%*s", label, "");
    for (int64_t j = 0; j < c; j++)
        fprintf(out, "%*lld", width, (long long)j);
    fprintf(out, "\n");
    for (int64_t i = 0; i < c; i++) {
        fprintf(out, "%*lld", label, (long long)i);
        for (int64_t j = 0; j < c; j++)
            fprintf(out, "%*lld", width, (long long)r->confusion[i * c + j]);
        fprintf(out, "\n");
    }
}

kiln_status train_confusion_write(const char *dir, const train_result *r, config_error *err)
{
    int64_t c = r->n_classes;
    if (r->confusion == NULL)
        return KILN_OK;
    train_text b = {0};
    train_append(&b, "true/predicted");
    for (int64_t j = 0; j < c; j++)
        train_append(&b, ",%lld", (long long)j);
    train_append(&b, "\n");
    for (int64_t i = 0; i < c; i++) {
        train_append(&b, "%lld", (long long)i);
        for (int64_t j = 0; j < c; j++)
            train_append(&b, ",%lld", (long long)r->confusion[i * c + j]);
        train_append(&b, "\n");
    }
    return train_write_text(dir, "confusion.csv", &b, err);
}
