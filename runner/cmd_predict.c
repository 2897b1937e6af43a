/*
 * `kiln predict --checkpoint F --input FILE --output FILE`: needs no config file; the model,
 * data settings and preprocessing come from the checkpoint (its "config" metadata and saved
 * statistics). Runs the inputs in infer mode, padding the last batch, and writes class
 * probabilities (softmax for softmax_cross_entropy, sigmoid for bce_with_logits, raw outputs
 * otherwise) as CSV with an argmax column "class", or as a float32 NPY of shape (N, C).
 * The output is written atomically (a temporary file beside it, then rename).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"

static const char USAGE[] =
    "usage: kiln predict --checkpoint FILE --input FILE --output FILE [--device SPEC]\n\n"
    "Runs a checkpoint's model on inputs without labels. The config, preprocessing\n"
    "statistics and weights all come from the checkpoint.\n\n"
    "  --checkpoint FILE  a checkpoint `kiln train` wrote (required)\n"
    "  --input FILE       .csv (the training file's columns, the label column optional),\n"
    "                     .npy (features of shape (N, ...)) or IDX images (.idx, .gz,\n"
    "                     -ubyte)\n"
    "  --output FILE      .csv: one row per sample, one column per output (probabilities\n"
    "                     for classifiers) and the argmax in \"class\"; .npy: float32 (N, C)\n"
    "  --device SPEC      device to run on (default: $KILN_DEVICE, else the config's)\n";

static int fail(kiln_context *ctx, kiln_status status, const config_error *err)
{
    if (err->message[0] != '\0') {
        fprintf(stderr, "kiln: error: %s\n", err->message);
        return CLI_EXIT_ERROR;
    }
    return cli_fail(ctx, status);
}

/* Softmax or sigmoid in place, per the loss. */
static void to_probabilities(kiln_loss_kind loss, float *v, int64_t n, int64_t c)
{
    for (int64_t r = 0; r < n; r++) {
        float *z = v + r * c;
        if (loss == KILN_LOSS_SOFTMAX_CROSS_ENTROPY) {
            double max = z[0], total = 0;
            for (int64_t j = 1; j < c; j++)
                max = z[j] > max ? z[j] : max;
            for (int64_t j = 0; j < c; j++)
                total += exp(z[j] - max);
            for (int64_t j = 0; j < c; j++)
                z[j] = (float)(exp(z[j] - max) / total);
        } else if (loss == KILN_LOSS_BCE_WITH_LOGITS) {
            for (int64_t j = 0; j < c; j++)
                z[j] = (float)(1.0 / (1.0 + exp(-(double)z[j])));
        }
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Appends formatted text to a growing buffer; false when out of memory. */
typedef struct text {
    char *data;
    size_t length, capacity;
} text;

static bool append(text *t, const void *bytes, size_t n)
{
    if (t->length + n + 1 > t->capacity) {
        size_t cap = t->capacity > 0 ? t->capacity : 4096;
        while (cap < t->length + n + 1)
            cap *= 2;
        char *p = realloc(t->data, cap);
        if (p == NULL)
            return false;
        t->data = p;
        t->capacity = cap;
    }
    memcpy(t->data + t->length, bytes, n);
    t->length += n;
    t->data[t->length] = '\0';
    return true;
}

static bool append_text(text *t, const char *s)
{
    return append(t, s, strlen(s));
}

static bool format_csv(text *t, const float *v, int64_t n, int64_t c, bool probabilities)
{
    char cell[64];
    bool ok = true;
    for (int64_t j = 0; j < c && ok; j++) {
        snprintf(cell, sizeof cell, "%s%s_%lld", j > 0 ? "," : "", probabilities ? "p" : "output",
                 (long long)j);
        ok = append_text(t, cell);
    }
    ok = ok && append_text(t, ",class\n");
    for (int64_t r = 0; r < n && ok; r++) {
        const float *z = v + r * c;
        int64_t best = 0;
        for (int64_t j = 0; j < c && ok; j++) {
            best = z[j] > z[best] ? j : best;
            snprintf(cell, sizeof cell, "%s%.9g", j > 0 ? "," : "", (double)z[j]);
            ok = append_text(t, cell);
        }
        snprintf(cell, sizeof cell, ",%lld\n", (long long)best);
        ok = ok && append_text(t, cell);
    }
    return ok;
}

/* NPY version 1.0, <f4, C order, shape (n, c); header padded to a multiple of 64. */
static bool format_npy(text *t, const float *v, int64_t n, int64_t c)
{
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)n, (long long)c);
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t header_len = padded - 10;
    preamble[8] = (unsigned char)(header_len & 0xff);
    preamble[9] = (unsigned char)(header_len >> 8);
    bool ok = append(t, preamble, sizeof preamble) && append(t, header, (size_t)len);
    for (size_t i = total; i < padded && ok; i++)
        ok = append_text(t, " ");
    return ok && append_text(t, "\n") && append(t, v, (size_t)(n * c) * sizeof(float));
}

static int predict(const char *checkpoint, const char *input, const char *output,
                   const char *device)
{
    kiln_context *ctx = cli_context_create();
    if (ctx == NULL)
        return CLI_EXIT_ERROR;
    config cfg;
    config_init(&cfg);
    config_error err = {{0}};
    kiln_safetensors *file = NULL;
    kiln_device *dev = NULL;
    kiln_dataset *ds = NULL;
    float *values = NULL;
    int64_t c = 0;
    text out = {0};
    kiln_status rc = kiln_safetensors_read(ctx, checkpoint, &file);
    if (rc == KILN_OK) {
        const char *yaml = kiln_safetensors_get_metadata(file, "config");
        if (yaml == NULL)
            rc = train_error(&err, KILN_ERR_NOT_FOUND,
                             "%s: no \"config\" metadata: not a checkpoint `kiln train` wrote",
                             checkpoint);
        else
            rc = config_load_string(yaml, strlen(yaml), checkpoint, NULL, NULL, 0, &cfg, &err);
    }
    if (rc == KILN_OK && !ends_with(output, ".csv") && !ends_with(output, ".npy"))
        rc = train_error(&err, KILN_ERR_INVALID_ARGUMENT,
                         "%s: unknown output format (expected .csv or .npy)", output);
    kiln_device_options options = {.spec = device != NULL ? device
                                                          : kiln_device_spec_effective(cfg.device)};
    if (rc == KILN_OK)
        rc = kiln_device_create(ctx, &options, &dev);
    if (rc == KILN_OK)
        rc = train_data_read_input(&cfg, ctx, input, file, &ds, &err);
    if (rc == KILN_OK)
        rc = train_predict(&cfg, ctx, dev, ds, file, &values, &c, &err);
    if (rc == KILN_OK) {
        kiln_loss_kind loss = cfg.loss.kind;
        bool probabilities =
            loss == KILN_LOSS_SOFTMAX_CROSS_ENTROPY || loss == KILN_LOSS_BCE_WITH_LOGITS;
        to_probabilities(loss, values, ds->n, c);
        bool ok = ends_with(output, ".csv") ? format_csv(&out, values, ds->n, c, probabilities)
                                            : format_npy(&out, values, ds->n, c);
        rc = ok ? train_write_atomic(output, out.data, out.length, &err)
                : train_error(&err, KILN_ERR_NO_MEMORY, "out of memory for the output");
    }
    int code = CLI_EXIT_OK;
    if (rc == KILN_OK)
        printf("predict: %lld sample(s), %lld output(s) each, written to %s\n", (long long)ds->n,
               (long long)c, output);
    else
        code = fail(ctx, rc, &err);
    free(out.data);
    free(values);
    kiln_dataset_destroy(ds);
    kiln_device_destroy(dev);
    kiln_safetensors_destroy(file);
    config_deinit(&cfg);
    kiln_context_destroy(ctx);
    return code;
}

static int run(int argc, char **argv)
{
    const cli_command *command = &cli_predict_command;
    const char *device = NULL, *checkpoint = NULL, *input = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(command, argc, argv, &i, "--device", &device);
        if (got == 0)
            got = cli_option_value(command, argc, argv, &i, "--checkpoint", &checkpoint);
        if (got == 0)
            got = cli_option_value(command, argc, argv, &i, "--input", &input);
        if (got == 0)
            got = cli_option_value(command, argc, argv, &i, "--output", &output);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        }
        return cli_usage_error(command, "unexpected argument '%s'", argv[i]);
    }
    if (checkpoint == NULL || input == NULL || output == NULL)
        return cli_usage_error(command, "missing %s",
                               checkpoint == NULL ? "--checkpoint FILE"
                               : input == NULL    ? "--input FILE"
                                                  : "--output FILE");
    return predict(checkpoint, input, output, device);
}

const cli_command cli_predict_command = {"predict", "run a checkpoint's model on new inputs", USAGE,
                                         run};
