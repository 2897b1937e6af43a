/*
 * `kiln eval CONFIG --checkpoint F [--split validation|test]` and `kiln test CONFIG
 * --checkpoint F` (eval on the test split): loads the checkpoint's weights into the model the
 * config describes, on any device, preprocesses the split with the checkpoint's statistics
 * (never refitted) and prints its loss and metrics in eval mode, and for a classifier the
 * confusion matrix. A checkpoint that does not match the config (names, shapes,
 * preprocessing) exits with status 2 and the differences.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"

static const char EVAL_USAGE[] =
    "usage: kiln eval CONFIG --checkpoint FILE [--split validation|test] [--device SPEC]\n"
    "                 [--set KEY=VALUE ...]\n\n"
    "Evaluates a checkpoint on a split of the config's data (default: test) in eval mode,\n"
    "preprocessed with the statistics saved in the checkpoint, and prints its loss and\n"
    "metrics.\n\n"
    "  --checkpoint FILE  a checkpoint `kiln train` wrote (required)\n"
    "  --split NAME       validation (held out of the training file with the config's seed)\n"
    "                     or test (default)\n"
    "  --device SPEC      device to run on (default: $KILN_DEVICE, else the config's)\n"
    "  --set KEY=VALUE    override a config key (repeatable)\n";

static const char TEST_USAGE[] =
    "usage: kiln test CONFIG --checkpoint FILE [--device SPEC] [--set KEY=VALUE ...]\n\n"
    "Evaluates a checkpoint on the config's test split: `kiln eval --split test`.\n";

static int fail(kiln_context *ctx, kiln_status status, const config_error *err)
{
    if (err->message[0] != '\0') {
        fprintf(stderr, "kiln: error: %s\n", err->message);
        return CLI_EXIT_ERROR;
    }
    return cli_fail(ctx, status);
}

static int evaluate(const char *path, const char *checkpoint, bool test, const char *device,
                    const char *const *overrides, size_t n_overrides)
{
    config cfg;
    config_error err = {{0}};
    kiln_context *ctx = NULL;
    if (cli_load_config(path, device, overrides, n_overrides, &cfg, &ctx) != CLI_EXIT_OK)
        return CLI_EXIT_ERROR;
    kiln_safetensors *file = NULL;
    kiln_device *dev = NULL;
    kiln_dataset *ds = NULL;
    train_result result = {0};
    kiln_status rc = kiln_safetensors_read(ctx, checkpoint, &file);
    kiln_device_options options = {.spec = device != NULL ? device
                                                          : kiln_device_spec_effective(cfg.device)};
    if (rc == KILN_OK)
        rc = kiln_device_create(ctx, &options, &dev);
    if (rc == KILN_OK)
        rc = train_data_load_split(&cfg, ctx, test, file, &ds, &err);
    if (rc == KILN_OK)
        rc = train_evaluate(&cfg, ctx, dev, ds, file, &result, &err);
    int code = CLI_EXIT_OK;
    if (rc == KILN_OK) {
        printf("%s:", test ? "test" : "validation");
        for (int i = 0; i < result.n_test; i++)
            printf(" %s %.4f", result.test_names[i], result.test_values[i]);
        printf("\n");
        train_confusion_print(stdout, &result);
    } else {
        code = fail(ctx, rc, &err);
    }
    train_result_deinit(&result);
    kiln_dataset_destroy(ds);
    kiln_device_destroy(dev);
    kiln_safetensors_destroy(file);
    kiln_context_destroy(ctx);
    config_deinit(&cfg);
    return code;
}

static int run_with(const cli_command *command, bool allow_split, int argc, char **argv)
{
    const char *path = NULL, *device = NULL, *checkpoint = NULL, *split = "test";
    const char *overrides[CONFIG_MAX_OVERRIDES];
    size_t n_overrides = 0;
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(command, argc, argv, &i, "--device", &device);
        if (got == 0)
            got = cli_option_value(command, argc, argv, &i, "--checkpoint", &checkpoint);
        if (got == 0 && allow_split)
            got = cli_option_value(command, argc, argv, &i, "--split", &split);
        if (got == 0)
            got = cli_option_set(command, argc, argv, &i, overrides, CONFIG_MAX_OVERRIDES,
                                 &n_overrides);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(command->usage, stdout);
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-' || path != NULL) {
            return cli_usage_error(command, "unexpected argument '%s'", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (path == NULL)
        return cli_usage_error(command, "missing CONFIG");
    if (checkpoint == NULL)
        return cli_usage_error(command, "missing --checkpoint FILE");
    if (strcmp(split, "test") != 0 && strcmp(split, "validation") != 0)
        return cli_usage_error(command, "--split: unknown split '%s' (validation or test)", split);
    return evaluate(path, checkpoint, strcmp(split, "test") == 0, device, overrides, n_overrides);
}

static int run_eval(int argc, char **argv)
{
    return run_with(&cli_eval_command, true, argc, argv);
}

static int run_test(int argc, char **argv)
{
    return run_with(&cli_test_command, false, argc, argv);
}

const cli_command cli_eval_command = {"eval", "evaluate a checkpoint on a split of the data",
                                      EVAL_USAGE, run_eval};
const cli_command cli_test_command = {"test", "evaluate a checkpoint on the test split", TEST_USAGE,
                                      run_test};
