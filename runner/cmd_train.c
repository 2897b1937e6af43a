/*
 * `kiln train CONFIG`: reads the config (with --set overrides and --device), loads and
 * preprocesses the data, trains with the configured callbacks, writes the run directory
 * (config.yaml, log.jsonl, log.csv, plot.svg, summary.json, last.safetensors, checkpoints) and ends
 * with the test split's loss and metrics in eval mode. Any error exits with status 2 and its
 * message. The first SIGINT ends training after the running step (stop reason "interrupted", exit
 * 0); a second one kills the process. --resume continues a run from its last.safetensors.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"

static const char USAGE[] =
    "usage: kiln train CONFIG [--device SPEC] [--set KEY=VALUE ...] [--quiet] [--run-dir DIR]\n"
    "                         [--resume RUN_DIR] [--profile]\n\n"
    "Trains the model a config file describes (docs/CONFIG.md), printing one line per\n"
    "epoch, and evaluates the test split at the end.\n\n"
    "  --device SPEC    device to train on (default: $KILN_DEVICE, else the config's)\n"
    "  --set KEY=VALUE  override a config key, e.g. --set train.epochs=5 (repeatable)\n"
    "  --quiet          no per-epoch lines\n"
    "  --run-dir DIR    where config.yaml, the logs, plot.svg and summary.json go (default: the\n"
    "                   checkpoint's directory, else runs/<config name>)\n"
    "  --profile        time every kernel on the device (OpenCL events): a table of the\n"
    "                   longest at the end, all of them in RUN_DIR/profile.csv\n"
    "  --resume RUN_DIR continue the run in RUN_DIR from RUN_DIR/last.safetensors (written\n"
    "                   after every epoch) up to the config's train.epochs, appending to\n"
    "                   its logs; on the same device the epochs repeat an uninterrupted run\n\n"
    "Ctrl-C ends training after the current step, keeps last.safetensors at the last\n"
    "complete epoch and still evaluates the test split; a second Ctrl-C exits at once.\n";

static void on_sigint(int signal)
{
    (void)signal;
    train_interrupt = 1;
}

/* The first SIGINT sets the flag; SA_RESETHAND makes a second one fatal as usual. */
static void catch_sigint(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, NULL);
}

static int fail(kiln_context *ctx, kiln_status status, const config_error *err)
{
    if (err->message[0] != '\0') {
        fprintf(stderr, "kiln: error: %s\n", err->message);
        return CLI_EXIT_ERROR;
    }
    return cli_fail(ctx, status);
}

static void print_summary(const train_result *r)
{
    printf("done: %lld epoch(s), stopped: %s", (long long)r->epochs_run, r->stop_reason);
    if (r->best_epoch >= 0)
        printf(", best epoch %lld%s", (long long)r->best_epoch + 1,
               r->restored ? " (weights restored)" : "");
    printf("\n");
    if (r->has_test) {
        printf("test:");
        for (int i = 0; i < r->n_test; i++)
            printf(" %s %.4f", r->test_names[i], r->test_values[i]);
        printf("\n");
        train_confusion_print(stdout, r);
    }
}

/* --profile: the 12 longest kernels on stdout, every one in dir/profile.csv. */
static kiln_status report_profile(kiln_device *dev, const char *dir, config_error *err)
{
    const kiln_profile_row *rows = NULL;
    size_t n = 0;
    kiln_status rc = kiln_device_profile(dev, &rows, &n);
    if (rc != KILN_OK)
        return rc;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += rows[i].ms;
    train_text csv = {0};
    train_append(&csv, "kernel,launches,ms,share\n");
    printf("profile: %.1f ms of device time in %zu kernels\n", total, n);
    for (size_t i = 0; i < n; i++) {
        double share = total > 0 ? rows[i].ms / total : 0;
        train_append(&csv, "%s,%llu,%.3f,%.4f\n", rows[i].name,
                     (unsigned long long)rows[i].launches, rows[i].ms, share);
        if (i < 12)
            printf("  %-40s %8llu launches %10.1f ms %5.1f%%\n", rows[i].name,
                   (unsigned long long)rows[i].launches, rows[i].ms, 100 * share);
    }
    return train_write_text(dir, "profile.csv", &csv, err);
}

/* `started`: train_now() when the command began, for summary.json's first_step_seconds. */
static int train(const char *path, const char *device, const char *const *overrides,
                 size_t n_overrides, bool quiet, const char *run_dir, const char *resume,
                 bool profile, double started)
{
    config cfg;
    config_error err = {{0}};
    kiln_context *ctx = NULL;
    if (cli_load_config(path, device, overrides, n_overrides, &cfg, &ctx) != CLI_EXIT_OK)
        return CLI_EXIT_ERROR;
    char dir[CONFIG_MAX_PATH];
    if (run_dir == NULL)
        run_dir = resume;
    if (run_dir != NULL) {
        snprintf(dir, sizeof dir, "%s", run_dir);
    } else if (cfg.train.checkpoint.enabled && strrchr(cfg.train.checkpoint.path, '/') != NULL) {
        snprintf(dir, sizeof dir, "%s", cfg.train.checkpoint.path);
        *strrchr(dir, '/') = '\0';
    } else {
        snprintf(dir, sizeof dir, "runs/%s", cfg.name);
    }
    kiln_device *dev = NULL;
    train_data data = {0};
    train_log log = {0};
    train_result result = {0};
    kiln_device_options options = {.spec = device != NULL ? device
                                                          : kiln_device_spec_effective(cfg.device),
                                   .profile = profile};
    kiln_status rc = kiln_device_create(ctx, &options, &dev);
    if (rc == KILN_OK)
        rc = train_data_load(&cfg, ctx, &data, &err);
    if (rc == KILN_OK)
        rc = train_log_open(&log, dir, quiet, &err);
    if (rc == KILN_OK && !quiet) {
        const kiln_device_info *info = kiln_device_get_info(dev);
        printf("training %s on %s: %lld train, %lld validation, %lld test samples; run "
               "directory %s\n",
               cfg.name, info->name, (long long)data.train->n,
               (long long)(data.validation != NULL ? data.validation->n : 0),
               (long long)(data.test != NULL ? data.test->n : 0), dir);
        fflush(stdout);
    }
    char resume_path[CONFIG_MAX_PATH + 32];
    if (resume != NULL)
        snprintf(resume_path, sizeof resume_path, "%s/last.safetensors", resume);
    double start = train_now();
    if (rc == KILN_OK) {
        catch_sigint();
        rc = train_run(&cfg, ctx, dev, &data, &log, resume != NULL ? resume_path : NULL, &result,
                       &err);
    }
    if (rc == KILN_OK) {
        const config_train *tr = &cfg.train;
        const char *monitor = tr->early_stopping.enabled ? tr->early_stopping.monitor
                              : tr->checkpoint.enabled   ? tr->checkpoint.monitor
                                                         : NULL;
        double first_step = log.first_step_end > 0 ? log.first_step_end - started : -1;
        rc = train_summary_write(&log, &result, data.cache, monitor, train_now() - start,
                                 first_step, &err);
    }
    if (rc == KILN_OK)
        rc = train_confusion_write(dir, &result, &err);
    int code = CLI_EXIT_OK;
    if (rc == KILN_OK)
        print_summary(&result);
    if (rc == KILN_OK && profile)
        rc = report_profile(dev, dir, &err);
    if (rc != KILN_OK)
        code = fail(ctx, rc, &err);
    train_result_deinit(&result);
    train_log_close(&log);
    train_data_deinit(&data);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    config_deinit(&cfg);
    return code;
}

static int run(int argc, char **argv)
{
    double started = train_now(); /* the process's start, but for the loader's few ms */
    const char *path = NULL, *device = NULL, *run_dir = NULL, *resume = NULL;
    const char *overrides[CONFIG_MAX_OVERRIDES];
    size_t n_overrides = 0;
    bool quiet = false, profile = false;
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(&cli_train_command, argc, argv, &i, "--device", &device);
        if (got == 0)
            got = cli_option_value(&cli_train_command, argc, argv, &i, "--run-dir", &run_dir);
        if (got == 0)
            got = cli_option_value(&cli_train_command, argc, argv, &i, "--resume", &resume);
        if (got == 0)
            got = cli_option_set(&cli_train_command, argc, argv, &i, overrides,
                                 CONFIG_MAX_OVERRIDES, &n_overrides);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            quiet = true;
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = true;
        } else if (argv[i][0] == '-' || path != NULL) {
            return cli_usage_error(&cli_train_command, "unexpected argument '%s'", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (path == NULL)
        return cli_usage_error(&cli_train_command, "missing CONFIG");
    return train(path, device, overrides, n_overrides, quiet, run_dir, resume, profile, started);
}

const cli_command cli_train_command = {"train", "train a model from a config file", USAGE, run};
