/*
 * `kiln tune`: measures which GEMM implementation is fastest on a device for each product
 * shape a model runs (or a generic set of shapes) and stores the choice in the cache
 * directory, where every later run on the same device and driver finds it
 * (kiln_device_tune_gemm). With a config, the shapes are recorded from one training step of
 * its model on zero inputs: the forward products and both backward ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "kiln/model.h"

static const char USAGE[] =
    "usage: kiln tune [--device SPEC] [--config YAML [--set KEY=VALUE]...]\n"
    "                 [--shape T:MxNxK[xB]]... [--budget SECONDS] [--no-clblast] [--show]\n\n"
    "Times every GEMM implementation the device offers (Kiln's kernel over a set of\n"
    "register tiles, packed and not, NT products also as dot products; CLBlast with\n"
    "its default parameters and with CPU-shaped overrides) on each product shape,\n"
    "checks each result against a double-precision reference, and stores the fastest\n"
    "correct choice per shape in the cache directory (see `kiln cache`), keyed by\n"
    "device and driver like the program binaries. Training reads the results when it\n"
    "creates the device; shapes that were never tuned use a tuned shape of the same\n"
    "power-of-two size class, else the device's defaults. Tuning runs only when asked\n"
    "for, and stops at its time budget.\n\n"
    "  --device SPEC     device to tune (default: the config's device, else\n"
    "                    $KILN_DEVICE, else auto)\n"
    "  --config YAML     tune the products of this model (one training step at its\n"
    "                    batch size); without it or --shape, a generic set: 1024^3\n"
    "                    and 256^3 with each operand transposed or not\n"
    "  --set KEY=VALUE   override a config key, as for `kiln train`\n"
    "  --shape T:MxNxK[xB]  also tune this product: T is NN, NT, TN or TT (A, B\n"
    "                    transposed or not), C is M x N, the sum runs over K, B\n"
    "                    products per call (default 1); repeatable\n"
    "  --budget SECONDS  stop searching after this long (default 300); shapes not\n"
    "                    reached keep what they had\n"
    "  --no-clblast      skip CLBlast's search (its first use compiles for ~40 s on\n"
    "                    PoCL); it is still timed where it is what runs a shape now\n"
    "  --show            tune nothing: print the shapes and what runs each now\n";

/* The generic shapes: square products, plain and with either operand transposed. */
static const kiln_gemm_shape GENERIC[] = {
    {false, false, 1024, 1024, 1024, 1}, {false, true, 1024, 1024, 1024, 1},
    {true, false, 1024, 1024, 1024, 1},  {false, false, 256, 256, 256, 1},
    {false, true, 256, 256, 256, 1},     {true, false, 256, 256, 256, 1},
};

enum { MAX_SHAPES = 64 };

typedef struct tune_args {
    const char *device, *config_path;
    const char *overrides[CONFIG_MAX_OVERRIDES];
    size_t n_overrides;
    kiln_gemm_shape shapes[MAX_SHAPES]; /* from --shape */
    size_t n_shapes;
    double budget;
    bool no_clblast, show;
} tune_args;

static bool same_shape(const kiln_gemm_shape *a, const kiln_gemm_shape *b)
{
    return a->transpose_a == b->transpose_a && a->transpose_b == b->transpose_b && a->m == b->m &&
           a->n == b->n && a->k == b->k && a->batch == b->batch;
}

/* Appends the --shape products not already in the list. */
static kiln_status add_shapes(const tune_args *a, kiln_gemm_shape **shapes, size_t *n)
{
    kiln_gemm_shape *all = realloc(*shapes, (*n + a->n_shapes + 1) * sizeof *all);
    if (all == NULL)
        return KILN_ERR_NO_MEMORY;
    *shapes = all;
    for (size_t i = 0; i < a->n_shapes; i++) {
        bool seen = false;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = same_shape(&all[j], &a->shapes[i]);
        if (!seen)
            all[(*n)++] = a->shapes[i];
    }
    return KILN_OK;
}

/* One training step of the config's model on zero inputs with the device recording its GEMM
 * shapes; *shapes (malloc'ed copy) receives them. */
static kiln_status record_model(const config *cfg, kiln_context *ctx, kiln_device *dev,
                                kiln_gemm_shape **shapes, size_t *n_shapes, config_error *err)
{
    kiln_graph *graph = NULL;
    kiln_model *model = NULL;
    kiln_executor *ex = NULL;
    void *zeros = NULL;
    kiln_value input, target, output, loss;
    kiln_status rc = config_build_graph(cfg, ctx, &graph, &input, &target, &output, &loss, err);
    if (rc == KILN_OK)
        rc = kiln_model_create(graph, dev, (uint64_t)cfg->seed, &model);
    kiln_executor_options options = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    if (rc == KILN_OK)
        rc = kiln_executor_create(model, &options, &ex);
    int64_t n_input = 0, n_target = 0;
    if (rc == KILN_OK) {
        n_input = kiln_shape_count(kiln_graph_value_shape(graph, input));
        n_target = kiln_shape_count(kiln_graph_value_shape(graph, target));
        zeros = calloc((size_t)(n_input > n_target ? n_input : n_target), sizeof(float));
        if (zeros == NULL)
            rc = KILN_ERR_NO_MEMORY;
    }
    if (rc == KILN_OK)
        rc = kiln_executor_set_input(ex, input, zeros, n_input);
    if (rc == KILN_OK)
        rc = kiln_executor_set_input(ex, target, zeros, n_target);
    if (rc == KILN_OK)
        rc = kiln_device_record_gemm_shapes(dev, true);
    if (rc == KILN_OK)
        rc = kiln_executor_forward(ex, 0);
    if (rc == KILN_OK)
        rc = kiln_executor_backward(ex);
    if (rc == KILN_OK)
        rc = kiln_device_finish(dev);
    if (rc == KILN_OK)
        rc = kiln_device_record_gemm_shapes(dev, false);
    if (rc == KILN_OK) {
        const kiln_gemm_shape *recorded = NULL;
        kiln_device_get_gemm_shapes(dev, &recorded, n_shapes);
        *shapes = malloc((*n_shapes > 0 ? *n_shapes : 1) * sizeof **shapes);
        if (*shapes == NULL)
            rc = KILN_ERR_NO_MEMORY;
        else if (*n_shapes > 0)
            memcpy(*shapes, recorded, *n_shapes * sizeof **shapes);
    }
    if (rc == KILN_ERR_NO_MEMORY && err->message[0] == '\0')
        snprintf(err->message, sizeof err->message, "out of memory recording the model's GEMMs");
    free(zeros);
    kiln_executor_destroy(ex);
    kiln_model_destroy(model);
    kiln_graph_destroy(graph);
    return rc;
}

static void print_progress(void *user, const char *line)
{
    (void)user;
    fprintf(stderr, "%s\n", line);
}

static void shape_text(const kiln_gemm_shape *s, char *out, size_t capacity)
{
    snprintf(out, capacity, "%c%c %zux%zux%zu%s", s->transpose_a ? 'T' : 'N',
             s->transpose_b ? 'T' : 'N', s->m, s->n, s->k, s->batch > 1 ? " batched" : "");
    if (s->batch > 1)
        snprintf(out + strlen(out), capacity - strlen(out), " x%zu", s->batch);
}

static void show(kiln_device *dev, const kiln_gemm_shape *shapes, size_t n)
{
    const char *path = kiln_device_get_tuning_path(dev);
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    printf("tuning results: %s%s\n", path != NULL ? path : "none (the cache is disabled)",
           path != NULL && f == NULL ? " (no file yet)" : "");
    if (f != NULL)
        fclose(f);
    printf("| shape (trans m x n x k) | runs with | from |\n| --- | --- | --- |\n");
    for (size_t i = 0; i < n; i++) {
        char shape[96], choice[48];
        bool tuned = false;
        shape_text(&shapes[i], shape, sizeof shape);
        kiln_device_gemm_choice(dev, &shapes[i], choice, sizeof choice, &tuned);
        printf("| %s | %s | %s |\n", shape, choice, tuned ? "tuning" : "default");
    }
}

static void report(const kiln_gemm_tune_row *rows, size_t n, const char *path)
{
    printf("| shape (trans m x n x k) | before | GFLOP/s | tuned | GFLOP/s | speed-up | timed | "
           "rejected |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < n; i++) {
        const kiln_gemm_tune_row *r = &rows[i];
        char shape[96];
        shape_text(&r->shape, shape, sizeof shape);
        if (!r->done) {
            printf("| %s | %s | | not reached (budget) | | | %d | %d |\n", shape, r->before,
                   r->n_timed, r->n_wrong);
            continue;
        }
        printf("| %s | %s | %.1f | %s | %.1f | %.2f | %d | %d |\n", shape, r->before,
               r->before_gflops, r->best, r->best_gflops,
               r->before_gflops > 0 ? r->best_gflops / r->before_gflops : 0.0, r->n_timed,
               r->n_wrong);
    }
    printf("results stored in %s\n", path != NULL ? path : "memory only (the cache is disabled)");
}

static int tune(const tune_args *a)
{
    config cfg;
    bool have_config = a->config_path != NULL;
    kiln_context *ctx = NULL;
    if (have_config) {
        if (cli_load_config(a->config_path, a->device, a->overrides, a->n_overrides, &cfg, &ctx) !=
            CLI_EXIT_OK)
            return CLI_EXIT_ERROR;
    } else if ((ctx = cli_context_create()) == NULL) {
        return CLI_EXIT_ERROR;
    }
    config_error err = {{0}};
    kiln_device *dev = NULL;
    kiln_gemm_shape *shapes = NULL;
    kiln_gemm_tune_row *rows = NULL;
    size_t n = 0;
    const char *spec = a->device != NULL ? a->device
                       : have_config     ? kiln_device_spec_effective(cfg.device)
                                         : kiln_device_spec_effective(NULL);
    kiln_device_options options = {.spec = spec};
    kiln_status rc = kiln_device_create(ctx, &options, &dev);
    if (rc == KILN_OK && have_config) {
        rc = record_model(&cfg, ctx, dev, &shapes, &n, &err);
    } else if (rc == KILN_OK && a->n_shapes > 0) {
        n = 0; /* only the --shape products */
    } else if (rc == KILN_OK) {
        n = sizeof GENERIC / sizeof GENERIC[0];
        shapes = malloc(sizeof GENERIC);
        if (shapes == NULL)
            rc = KILN_ERR_NO_MEMORY;
        else
            memcpy(shapes, GENERIC, sizeof GENERIC);
    }
    if (rc == KILN_OK)
        rc = add_shapes(a, &shapes, &n);
    int code = CLI_EXIT_OK;
    if (rc == KILN_OK && n == 0) {
        printf("%s runs no matrix products: nothing to tune\n", a->config_path);
    } else if (rc == KILN_OK && a->show) {
        show(dev, shapes, n);
    } else if (rc == KILN_OK) {
        fprintf(stderr, "tuning %zu GEMM shape(s) on %s, budget %.0f s\n", n,
                kiln_device_get_info(dev)->name, a->budget);
        rows = calloc(n, sizeof *rows);
        kiln_gemm_tune_options to = {
            .budget_seconds = a->budget, .skip_clblast = a->no_clblast, .progress = print_progress};
        rc = rows == NULL ? KILN_ERR_NO_MEMORY : kiln_device_tune_gemm(dev, shapes, n, &to, rows);
        if (rc == KILN_OK)
            report(rows, n, kiln_device_get_tuning_path(dev));
    }
    if (rc != KILN_OK && err.message[0] != '\0') {
        fprintf(stderr, "kiln tune: error: %s\n", err.message);
        code = CLI_EXIT_ERROR;
    } else if (rc != KILN_OK) {
        code = cli_fail(ctx, rc);
    }
    free(rows);
    free(shapes);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    if (have_config)
        config_deinit(&cfg);
    return code;
}

static int run(int argc, char **argv)
{
    static tune_args a; /* MAX_SHAPES shapes: not on the stack */
    a = (tune_args){.budget = 300};
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int got = cli_option_value(&cli_tune_command, argc, argv, &i, "--device", &a.device);
        if (got == 0)
            got = cli_option_value(&cli_tune_command, argc, argv, &i, "--config", &a.config_path);
        if (got == 0) {
            got = cli_option_value(&cli_tune_command, argc, argv, &i, "--budget", &value);
            char *end = NULL;
            if (got > 0 &&
                (!isfinite(a.budget = strtod(value, &end)) || a.budget <= 0 || *end != '\0'))
                return cli_usage_error(&cli_tune_command,
                                       "--budget takes a number of seconds > 0, not '%s'", value);
        }
        if (got == 0) {
            got = cli_option_value(&cli_tune_command, argc, argv, &i, "--shape", &value);
            if (got > 0 && a.n_shapes == MAX_SHAPES)
                return cli_usage_error(&cli_tune_command, "more than %d --shape options",
                                       (int)MAX_SHAPES);
            if (got > 0 && !kiln_gemm_shape_parse(value, &a.shapes[a.n_shapes++]))
                return cli_usage_error(&cli_tune_command,
                                       "--shape takes T:MxNxK or T:MxNxKxB with T one of NN, NT, "
                                       "TN, TT and sizes 1 to 2147483648, not '%s'",
                                       value);
        }
        if (got == 0)
            got = cli_option_set(&cli_tune_command, argc, argv, &i, a.overrides,
                                 CONFIG_MAX_OVERRIDES, &a.n_overrides);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--no-clblast") == 0) {
            a.no_clblast = true;
        } else if (strcmp(argv[i], "--show") == 0) {
            a.show = true;
        } else {
            return cli_usage_error(&cli_tune_command, "unexpected argument '%s'", argv[i]);
        }
    }
    if (a.n_overrides > 0 && a.config_path == NULL)
        return cli_usage_error(&cli_tune_command, "--set needs --config");
    return tune(&a);
}

const cli_command cli_tune_command = {
    "tune", "find the fastest GEMM implementation per shape on a device and store it", USAGE, run};
