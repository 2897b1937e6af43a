/*
 * The runner's config layer (runner/config*.c), no device needed: DESIGN.md's example config
 * parses to the expected struct, field by field, defaults included; a table of bad configs and
 * overrides, each failing with its exact message (file:line:column or the override, key path,
 * what was expected, "did you mean"); the effective config written, read back (from another
 * directory) and compared equal, and written again to the same text; --set overrides and
 * --device; the model configs in models/ parse and build graphs of the right output shape;
 * a library build error points at the layer's line; docs/CONFIG.md names every key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "support/kiln_test.h"

static const char DESIGN_EXAMPLE[] =
    "name: fashion-mnist-mlp\n"
    "seed: 42\n"
    "device: auto                 # auto | cpu | gpu | amd | intel | nvidia | pocl | VENDOR:N\n"
    "data:\n"
    "  format: idx\n"
    "  train: {images: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz,\n"
    "          labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz}\n"
    "  test:  {images: /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz,\n"
    "          labels: /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz}\n"
    "  validation: {fraction: 0.1, stratify: true}\n"
    "  preprocess: [{scale: 0.00392156862}, {standardize: global}]\n"
    "model:\n"
    "  input: [1, 28, 28]\n"
    "  layers:\n"
    "    - flatten\n"
    "    - dense: {units: 256}\n"
    "    - relu\n"
    "    - dropout: {rate: 0.2}\n"
    "    - dense: {units: 10}\n"
    "loss: softmax_cross_entropy\n"
    "metrics: [accuracy]\n"
    "train:\n"
    "  epochs: 30\n"
    "  batch_size: 128\n"
    "  optimizer: {adam: {lr: 0.001}}\n"
    "  callbacks:\n"
    "    early_stopping: {monitor: val_loss, patience: 3, min_delta: 0.0001, restore_best: true}\n"
    "    checkpoint: {path: runs/fmnist-mlp/best.safetensors, monitor: val_loss, "
    "save_best_only: true}\n";

static kiln_status load(const char *text, const char *const *overrides, size_t n, config *out,
                        config_error *err)
{
    return config_load_string(text, strlen(text), "bad.yaml", "/cfg", overrides, n, out, err);
}

static config load_ok(const char *text, const char *const *overrides, size_t n)
{
    config c;
    config_error err;
    kiln_status rc = load(text, overrides, n, &c, &err);
    if (rc != KILN_OK)
        fail_msg("config failed to load: %s", err.message);
    return c;
}

static void test_design_example(void **state)
{
    (void)state;
    config c = load_ok(DESIGN_EXAMPLE, NULL, 0);
    assert_string_equal(c.name, "fashion-mnist-mlp");
    assert_int_equal(c.seed, 42);
    assert_string_equal(c.device, "auto");
    const config_data *d = &c.data;
    assert_int_equal(d->format, CONFIG_FORMAT_IDX);
    assert_string_equal(d->train.images,
                        "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    assert_string_equal(d->train.labels,
                        "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    assert_true(d->has_test);
    assert_string_equal(d->test.images,
                        "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    assert_string_equal(d->test.labels,
                        "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
    assert_true(d->validation_fraction == 0.1);
    assert_true(d->stratify);
    assert_int_equal(d->n_preprocess, 2);
    assert_int_equal(d->preprocess[0].kind, CONFIG_PREPROCESS_SCALE);
    assert_true(d->preprocess[0].scale == 0.00392156862);
    assert_int_equal(d->preprocess[1].kind, CONFIG_PREPROCESS_STANDARDIZE);
    assert_int_equal(d->preprocess[1].standardize, CONFIG_STANDARDIZE_GLOBAL);

    const config_model *m = &c.model;
    int64_t input[] = {1, 28, 28};
    kiln_shape want = kiln_shape_of(3, input);
    assert_true(kiln_shape_equal(&m->input, &want));
    assert_int_equal(m->n_layers, 5);
    kiln_layer_kind kinds[] = {KILN_LAYER_FLATTEN, KILN_LAYER_DENSE, KILN_LAYER_RELU,
                               KILN_LAYER_DROPOUT, KILN_LAYER_DENSE};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(m->layers[i].spec.kind, kinds[i]);
        assert_string_equal(m->layers[i].name, "");
        assert_int_equal(m->layers[i].spec.n_inputs, 0);
        assert_int_equal(m->layers[i].line, 15 + (int)i);
        assert_int_equal(m->layers[i].column, 7);
    }
    assert_int_equal(m->layers[1].spec.dense.units, 256);
    assert_true(m->layers[1].spec.dense.bias);
    assert_int_equal(m->layers[1].spec.dense.init, KILN_INIT_HE_UNIFORM);
    assert_true(m->layers[3].spec.dropout.rate == 0.2f);
    assert_int_equal(m->layers[4].spec.dense.units, 10);

    assert_int_equal(c.loss.kind, KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
    assert_true(c.loss.label_smoothing == 0.0f);
    assert_int_equal(c.n_metrics, 1);
    assert_int_equal(c.metrics[0].kind, KILN_METRIC_ACCURACY);

    const config_train *t = &c.train;
    assert_int_equal(t->epochs, 30);
    assert_int_equal(t->batch_size, 128);
    assert_int_equal(t->optimizer.kind, KILN_OPTIMIZER_ADAM);
    assert_true(t->optimizer.lr == 0.001f);
    assert_true(t->optimizer.beta1 == 0.9f && t->optimizer.beta2 == 0.999f);
    assert_true(t->optimizer.eps == 1e-8f && t->optimizer.weight_decay == 0.0f);
    assert_true(t->optimizer.clip_norm == 0.0f);
    assert_int_equal(t->schedule.kind, KILN_SCHEDULE_CONSTANT);
    assert_int_equal(t->schedule.warmup_steps, 0);
    const config_early_stopping *e = &t->early_stopping;
    assert_true(e->enabled);
    assert_string_equal(e->monitor, "val_loss");
    assert_int_equal(e->mode, CONFIG_MODE_MIN);
    assert_int_equal(e->patience, 3);
    assert_true(e->min_delta == 0.0001);
    assert_false(e->has_baseline);
    assert_int_equal(e->start_from_epoch, 0);
    assert_true(e->restore_best);
    const config_checkpoint *k = &t->checkpoint;
    assert_true(k->enabled);
    assert_string_equal(k->path, "/cfg/runs/fmnist-mlp/best.safetensors");
    assert_string_equal(k->monitor, "val_loss");
    assert_int_equal(k->mode, CONFIG_MODE_MIN);
    assert_true(k->save_best_only);
    assert_false(k->save_last);
    assert_false(t->diagnose.eval_train);
    assert_true(t->diagnose.threshold == 0.25);
    assert_false(t->drop_last);
    assert_true(t->shuffle);

    /* The spec the library gets, and the schedule from the optimiser's rate. */
    kiln_layer_spec layers[5];
    kiln_spec spec;
    config_fill_spec(&c, layers, &spec);
    assert_int_equal(spec.n_layers, 5);
    assert_int_equal(spec.batch_size, 128);
    assert_true(kiln_shape_equal(&spec.input, &want));
    assert_null(spec.layers[1].name);
    assert_int_equal(spec.layers[1].dense.units, 256);
    assert_int_equal(spec.loss.kind, KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
    kiln_schedule schedule;
    config_fill_schedule(&c, &schedule);
    assert_int_equal(schedule.kind, KILN_SCHEDULE_CONSTANT);
    assert_true(schedule.base_lr == (double)0.001f);
    config_deinit(&c);
}

/* Defaults for a config that gives only the required keys, and the effective config it
 * writes (the whole text, so the writer's output is pinned down). */
#define DATA "data:\n  format: idx\n  train: {images: a.gz, labels: b.gz}\n"
#define MODEL "model:\n  input: [4]\n  layers:\n    - dense: {units: 3}\n"
#define LOSS "loss: mse\n"
#define HEAD DATA MODEL LOSS
#define CLASSES DATA MODEL "loss: softmax_cross_entropy\n"
/* data.preprocess's value (line 4, column 15) in front of a valid model and loss. */
#define STEPS(list) DATA "  preprocess: " list "\n" MODEL LOSS

static const char MINIMAL_EFFECTIVE[] =
    "# Effective config of bad.yaml\n"
    "# (every key, defaults filled in, overrides applied; see docs/CONFIG.md)\n"
    "name: bad\n"
    "seed: 0\n"
    "device: auto\n"
    "data:\n"
    "  format: idx\n"
    "  train:\n"
    "    images: /cfg/a.gz\n"
    "    labels: /cfg/b.gz\n"
    "  validation:\n"
    "    fraction: 0\n"
    "    stratify: false\n"
    "  remove_duplicates: false\n"
    "  preprocess: []\n"
    "  cache: true\n"
    "model:\n"
    "  input: [4]\n"
    "  layers:\n"
    "  - {dense: {units: 3, bias: true, init: he_uniform}}\n"
    "loss: mse\n"
    "metrics: []\n"
    "train:\n"
    "  epochs: 10\n"
    "  batch_size: 32\n"
    "  optimizer:\n"
    "    adam:\n"
    "      lr: 0.001\n"
    "      beta1: 0.9\n"
    "      beta2: 0.999\n"
    "      eps: 1e-08\n"
    "      weight_decay: 0\n"
    "      clip_norm: 0\n"
    "  schedule:\n"
    "    constant:\n"
    "      warmup_steps: 0\n"
    "  callbacks:\n"
    "    diagnose:\n"
    "      eval_train: false\n"
    "      threshold: 0.25\n"
    "  drop_last: false\n"
    "  shuffle: true\n";

static void test_defaults_and_writer(void **state)
{
    (void)state;
    config c = load_ok(HEAD, NULL, 0);
    config_error err;
    char *text = NULL;
    assert_int_equal(config_write_string(&c, &text, &err), KILN_OK);
    if (strcmp(text, MINIMAL_EFFECTIVE) != 0)
        fail_msg("effective config:\n%s\nwanted:\n%s", text, MINIMAL_EFFECTIVE);
    /* The FILE writer writes the same text. */
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(config_write_file(&c, f, &err), KILN_OK);
    rewind(f);
    static char from_file[sizeof MINIMAL_EFFECTIVE + 64];
    size_t n = fread(from_file, 1, sizeof from_file - 1, f);
    from_file[n] = '\0';
    fclose(f);
    assert_string_equal(from_file, text);
    assert_false(c.data.has_test);
    assert_false(c.train.early_stopping.enabled);
    assert_false(c.train.checkpoint.enabled);
    assert_int_equal(c.model.layers[0].line, 7);
    free(text);
    config_deinit(&c);
}

typedef struct bad_case {
    const char *yaml;
    const char *overrides[2];
    const char *message;
} bad_case;

static const bad_case BAD[] = {
    {HEAD "train:\n  epocs: 3\n",
     {NULL},
     "bad.yaml:10:3: train.epocs: unknown key 'epocs'; did you mean 'epochs'?"},
    {HEAD "train:\n  speed: 3\n",
     {NULL},
     "bad.yaml:10:3: train.speed: unknown key 'speed'; expected one of: epochs, batch_size, "
     "optimizer, schedule, callbacks, drop_last, shuffle"},
    {HEAD "trian: {epochs: 3}\n",
     {NULL},
     "bad.yaml:9:1: trian: unknown key 'trian'; did you mean 'train'?"},
    {HEAD "train: {epochs: [1, 2]}\n",
     {NULL},
     "bad.yaml:9:17: train.epochs: expected an integer >= 1, got a list"},
    {HEAD "train: 5\n",
     {NULL},
     "bad.yaml:9:8: train: expected a mapping with the keys epochs, batch_size, optimizer, "
     "schedule, callbacks, drop_last, shuffle; got '5'"},
    {HEAD "train: {epochs: -1}\n",
     {NULL},
     "bad.yaml:9:17: train.epochs: expected an integer >= 1, got '-1'"},
    {HEAD "train: {epochs: 2.5}\n",
     {NULL},
     "bad.yaml:9:17: train.epochs: expected an integer >= 1, got '2.5'"},
    {HEAD "train: {batch_size: 0}\n",
     {NULL},
     "bad.yaml:9:21: train.batch_size: expected an integer >= 1, got '0'"},
    {HEAD "train:\n  optimizer: {adam: {lr: abc}}\n",
     {NULL},
     "bad.yaml:10:26: train.optimizer.adam.lr: expected a number > 0, got 'abc'"},
    {HEAD "train:\n  optimizer: {adam: {lr: 1e999}}\n",
     {NULL},
     "bad.yaml:10:26: train.optimizer.adam.lr: expected a number > 0, got '1e999', which is out "
     "of range"},
    {HEAD "train:\n  optimizer: {adam: {lr: 1e39}}\n",
     {NULL},
     "bad.yaml:10:26: train.optimizer.adam.lr: expected a number > 0, got '1e39', which is out "
     "of range for a 32-bit float"},
    {HEAD "train:\n  optimizer: {adam: {lr: .inf}}\n",
     {NULL},
     "bad.yaml:10:26: train.optimizer.adam.lr: expected a number > 0, got '.inf'"},
    {DATA "model:\n  input: [4]\n  layers:\n    - dropout: {rate: 1.5}\n" LOSS,
     {NULL},
     "bad.yaml:7:23: model.layers[0].dropout.rate: expected a number in [0, 1), got '1.5'"},
    {DATA "model:\n  input: [4]\n  layers:\n    - maxpool2: {size: 2}\n" LOSS,
     {NULL},
     "bad.yaml:7:7: model.layers[0]: unknown layer 'maxpool2'; did you mean 'maxpool2d'?"},
    {DATA "model:\n  input: [4]\n  layers:\n    - lstm\n" LOSS,
     {NULL},
     "bad.yaml:7:7: model.layers[0]: unknown layer 'lstm'; expected one of: dense, conv2d, "
     "conv3d, maxpool2d, maxpool3d, avgpool2d, avgpool3d, global_avgpool, flatten, upsample2d, "
     "upsample3d, batchnorm, dropout, relu, leaky_relu, sigmoid, tanh, gelu, softmax, concat, "
     "add"},
    {DATA MODEL "loss: hinge\n",
     {NULL},
     "bad.yaml:8:7: loss: unknown loss 'hinge'; expected one of: softmax_cross_entropy, "
     "bce_with_logits, mse, l1, dice, dice_bce"},
    {DATA MODEL "loss: {dicee: {smooth: 1}}\n",
     {NULL},
     "bad.yaml:8:8: loss: unknown loss 'dicee'; did you mean 'dice'?"},
    {DATA MODEL "loss: {softmax_cross_entropy: {label_smoothing: 1}}\n",
     {NULL},
     "bad.yaml:8:49: loss.softmax_cross_entropy.label_smoothing: expected a number in [0, 1), "
     "got '1'"},
    {HEAD "train:\n  epochs: 3\n  epochs: 4\n",
     {NULL},
     "bad.yaml:11:3: train.epochs: duplicate key 'epochs' (first given at line 10, column 3)"},
    {DATA LOSS, {NULL}, "bad.yaml:1:1: missing required key 'model'"},
    {DATA "model:\n  input: [4]\n  layers:\n    - dense\n" LOSS,
     {NULL},
     "bad.yaml:7:7: model.layers[0].dense: missing required key 'units'"},
    {HEAD "train: {schedule: step}\n",
     {NULL},
     "bad.yaml:9:19: train.schedule.step: missing required key 'step_size'"},
    {HEAD "train: {shuffle: yes}\n",
     {NULL},
     "bad.yaml:9:18: train.shuffle: expected true or false, got 'yes'"},
    {HEAD "train: {epochs: \"10\"}\n",
     {NULL},
     "bad.yaml:9:17: train.epochs: expected an integer >= 1, got the quoted string \"10\""},
    {HEAD "train: {epochs: 3\n",
     {NULL},
     "bad.yaml:10:1: YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
     "mapping at line 9, column 8)"},
    {HEAD "train:\n  optimizer: {adam: {}, sgd: {}}\n",
     {NULL},
     "bad.yaml:10:25: train.optimizer: give one optimizer, not several ('adam' and 'sgd')"},
    {HEAD "train:\n  optimizer: {sgd: {lr: 0.1, nesterov: true}}\n",
     {NULL},
     "bad.yaml:10:40: train.optimizer.sgd.nesterov: Nesterov momentum needs momentum > 0 (got "
     "0); set momentum, such as 0.9"},
    {HEAD "train:\n  callbacks:\n    early_stopping: {monitor: val_loss}\n",
     {NULL},
     "bad.yaml:11:31: train.callbacks.early_stopping.monitor: 'val_loss' needs a validation "
     "split; set data.validation.fraction, or monitor 'loss'"},
    {HEAD "train:\n  callbacks:\n    checkpoint: {path: best.safetensors, monitor: accuracy}\n",
     {NULL},
     "bad.yaml:11:51: train.callbacks.checkpoint.monitor: 'accuracy' is not computed; add "
     "accuracy to metrics"},
    {DATA "model:\n  input: [4]\n  layers:\n    - {name: fc1, op: dense, units: 3}\n"
          "    - {op: add, inputs: [fc1, fc2]}\n" LOSS,
     {NULL},
     "bad.yaml:8:31: model.layers[1].inputs[1]: no layer named 'fc2' comes before this one; did "
     "you mean 'fc1'?"},
    {DATA "model:\n  input: [4]\n  layers:\n    - concat: {axis: 1}\n" LOSS,
     {NULL},
     "bad.yaml:7:15: model.layers[0].concat: missing required key 'inputs' (the names of the "
     "layers to join)"},
    {DATA "model:\n  input: [4]\n  layers:\n    - {name: a, op: relu}\n"
          "    - {name: a, op: tanh}\n" LOSS,
     {NULL},
     "bad.yaml:8:14: model.layers[1].name: 'a' is already the name of model.layers[0]; names "
     "must be unique"},
    {DATA "model:\n  input: [4]\n  layers:\n    - {name: input, op: relu}\n" LOSS,
     {NULL},
     "bad.yaml:7:14: model.layers[0].name: 'input' is reserved for the model's input; choose "
     "another name"},
    {DATA "model:\n  input: [4]\n  layers:\n    - conv2d: {filters: 2, kernel: [3, 3, 3]}\n" LOSS,
     {NULL},
     "bad.yaml:7:36: model.layers[0].conv2d.kernel: expected an integer >= 1 or a list of 2 of "
     "them (one per spatial axis), got a list of 3"},
    {DATA "model:\n  input: [4]\n  layers:\n"
          "    - conv2d: {filters: 2, kernel: 3, padding: valid}\n" LOSS,
     {NULL},
     "bad.yaml:7:48: model.layers[0].conv2d.padding: expected same, an integer >= 0 or a list "
     "of 2 of them, got 'valid'"},
    {DATA "model:\n  input: [4]\n  layers:\n    - dense: {units: 3, init: glorot}\n" LOSS,
     {NULL},
     "bad.yaml:7:31: model.layers[0].dense.init: unknown weight init 'glorot'; expected one "
     "of: constant, he_uniform, he_normal, xavier_uniform, xavier_normal"},
    {DATA "model:\n  input: 784\n  layers:\n    - dense: {units: 3}\n" LOSS,
     {NULL},
     "bad.yaml:5:10: model.input: expected one sample's shape without the batch axis: a list "
     "of 1 to 5 integers >= 1, such as [1, 28, 28]; got '784'"},
    {"data:\n  format: csv\n  train: {images: a.gz, labels: b.gz}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:11: data.train.images: unknown key 'images'; expected one of: file, "
     "label_column, header"},
    {HEAD "metrics: [acuracy]\n",
     {NULL},
     "bad.yaml:9:11: metrics[0]: unknown metric 'acuracy'; did you mean 'accuracy'?"},
    /* Metrics: each fits the loss, takes only its settings, is listed once. */
    {HEAD "metrics: [accuracy]\n",
     {NULL},
     "bad.yaml:9:11: metrics[0]: 'accuracy' is a classification metric and needs loss "
     "softmax_cross_entropy; the loss is mse"},
    {CLASSES "metrics: [f1, r2]\n",
     {NULL},
     "bad.yaml:9:15: metrics[1]: 'r2' is a regression metric and needs loss mse or l1; the loss "
     "is softmax_cross_entropy"},
    {HEAD "metrics: [{dice: {threshold: 0.5}}]\n",
     {NULL},
     "bad.yaml:9:11: metrics[0]: 'dice' is a segmentation metric and needs loss dice, dice_bce "
     "or bce_with_logits; the loss is mse"},
    {CLASSES "metrics: [{top_k: 0}]\n",
     {NULL},
     "bad.yaml:9:19: metrics[0].top_k: expected an integer >= 1, got '0'"},
    {CLASSES "metrics: [{top_k: {k: 3}}]\n",
     {NULL},
     "bad.yaml:9:19: metrics[0].top_k: expected an integer >= 1, got a mapping"},
    {CLASSES "metrics: [accuracy, {top_k: 3}, {top_k: 3}]\n",
     {NULL},
     "bad.yaml:9:33: metrics[2]: 'top3_accuracy' is already listed (metrics[1])"},
    {CLASSES "metrics: [{precision: 2}]\n",
     {NULL},
     "bad.yaml:9:23: metrics[0].precision: takes no settings; expected nothing or {}, got '2'"},
    {DATA MODEL "loss: dice\nmetrics: [{iou: {smooth: -1}}]\n",
     {NULL},
     "bad.yaml:9:26: metrics[0].iou.smooth: expected a number >= 0, got '-1'"},
    {DATA MODEL "loss: dice\nmetrics: [{iou: {treshold: 0}}]\n",
     {NULL},
     "bad.yaml:9:18: metrics[0].iou.treshold: unknown key 'treshold'; did you mean "
     "'threshold'?"},
    {CLASSES "metrics: [recal]\n",
     {NULL},
     "bad.yaml:9:11: metrics[0]: unknown metric 'recal'; did you mean 'recall'?"},
    {CLASSES "metrics: [accuracy]\ntrain:\n  callbacks:\n    early_stopping: {monitor: f1}\n",
     {NULL},
     "bad.yaml:12:31: train.callbacks.early_stopping.monitor: 'f1' is not computed; add f1 to "
     "metrics"},
    {CLASSES "metrics: [{top_k: 2}]\ntrain:\n  callbacks:\n"
             "    early_stopping: {monitor: top5_accuracy}\n",
     {NULL},
     "bad.yaml:12:31: train.callbacks.early_stopping.monitor: 'top5_accuracy' is not computed; "
     "add {top_k: 5} to metrics"},
    {CLASSES "metrics: [precision]\ntrain:\n  callbacks:\n"
             "    early_stopping: {monitor: precison}\n",
     {NULL},
     "bad.yaml:12:31: train.callbacks.early_stopping.monitor: unknown monitor 'precison'; did "
     "you mean 'precision'?"},
    {HEAD "seed: 99999999999999999999\n",
     {NULL},
     "bad.yaml:9:7: seed: expected an integer >= 0, got '99999999999999999999', which is out "
     "of range"},
    {HEAD "---\nseed: 1\n",
     {NULL},
     "bad.yaml:9:1: a second YAML document starts here; a config is one document"},
    {HEAD "? [a]\n: 1\n", {NULL}, "bad.yaml:9:3: keys must be names, got a list"},
    {"- a\n- b\n",
     {NULL},
     "bad.yaml:1:1: expected a mapping of keys at the top of the config, got a list"},
    {STEPS("[standardise]"),
     {NULL},
     "bad.yaml:4:16: data.preprocess[0]: unknown preprocessing step 'standardise'; did you mean "
     "'standardize'?"},
    {STEPS("[{standardize: per_chanel}]"),
     {NULL},
     "bad.yaml:4:30: data.preprocess[0].standardize: unknown standardize mode 'per_chanel'; did "
     "you mean 'per_channel'?"},
    {STEPS("[{standardize: per_sample}]"),
     {NULL},
     "bad.yaml:4:30: data.preprocess[0].standardize: unknown standardize mode 'per_sample'; "
     "expected one of: global, per_feature, per_channel"},
    {STEPS("[impute]"),
     {NULL},
     "bad.yaml:4:16: data.preprocess[0].impute: impute needs a strategy: {impute: mean}, {impute: "
     "median} or {impute: {constant: 0}}"},
    {STEPS("[{impute: meen}]"),
     {NULL},
     "bad.yaml:4:25: data.preprocess[0].impute: unknown imputation strategy 'meen'; did you mean "
     "'mean'?"},
    {STEPS("[{impute: mode}]"),
     {NULL},
     "bad.yaml:4:25: data.preprocess[0].impute: unknown imputation strategy 'mode'; expected one "
     "of: mean, median, constant"},
    {STEPS("[{impute: constant}]"),
     {NULL},
     "bad.yaml:4:25: data.preprocess[0].impute.constant: constant needs its fill value, as in "
     "{impute: {constant: 0}}"},
    {STEPS("[{impute: {constant: abc}}]"),
     {NULL},
     "bad.yaml:4:36: data.preprocess[0].impute.constant: expected a number, got 'abc'"},
    {STEPS("[{impute: {mean: 1}}]"),
     {NULL},
     "bad.yaml:4:32: data.preprocess[0].impute.mean: mean takes no value; write {impute: mean}"},
    {STEPS("[{impute: {constant: 1, mean: 2}}]"),
     {NULL},
     "bad.yaml:4:39: data.preprocess[0].impute: give one imputation strategy, not several "
     "('constant' and 'mean')"},
    {STEPS("[{minmax: 1}]"),
     {NULL},
     "bad.yaml:4:25: data.preprocess[0].minmax: minmax takes no setting; write it alone, as in "
     "[minmax]"},
    {STEPS("[{drop_missing: true}]"),
     {NULL},
     "bad.yaml:4:31: data.preprocess[0].drop_missing: drop_missing takes no setting; write it "
     "alone, as in [drop_missing]"},
    {STEPS("[drop_mising]"),
     {NULL},
     "bad.yaml:4:16: data.preprocess[0]: unknown preprocessing step 'drop_mising'; did you mean "
     "'drop_missing'?"},
    {STEPS("[{zscore: global}]"),
     {NULL},
     "bad.yaml:4:17: data.preprocess[0]: unknown preprocessing step 'zscore'; expected one of: "
     "scale, standardize, minmax, impute, drop_missing"},
    {STEPS("[{scale: 0}]"),
     {NULL},
     "bad.yaml:4:24: data.preprocess[0].scale: expected a number other than 0, got '0'"},
    {STEPS("[minmax, scale]"),
     {NULL},
     "bad.yaml:4:24: data.preprocess[1]: scale needs its factor, as in {scale: 0.00392}"},
    {DATA "  remove_duplicates: yes\n" MODEL LOSS,
     {NULL},
     "bad.yaml:4:22: data.remove_duplicates: expected true or false, got 'yes'"},
    /* data.*.label_column by name */
    {"data:\n  format: csv\n  train: {file: t.csv, label_column: price, header: false}\n" MODEL
         LOSS,
     {NULL},
     "bad.yaml:3:10: data.train: label_column 'price' names a column, which needs header: true"},
    {"data:\n  format: csv\n  train: {file: t.csv, label_column: -1}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:38: data.train.label_column: expected an integer >= 0, got '-1'"},
    {"data:\n  format: csv\n  train: {file: t.csv, label_column: [1]}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:38: data.train.label_column: expected a column index >= 0 or a column name, "
     "got a list"},
    /* data.synthetic */
    {"data:\n  format: synthetic\n" MODEL LOSS,
     {NULL},
     "bad.yaml:2:3: data: missing required key 'synthetic' (format synthetic generates its "
     "data, e.g. synthetic: spheres3d)"},
    {DATA "  synthetic: spheres3d\n" MODEL LOSS,
     {NULL},
     "bad.yaml:2:3: data: 'synthetic' needs format: synthetic (the format is idx)"},
    {"data:\n  format: synthetic\n  synthetic: spheres3d\n  train: {images: a, labels: b}\n" MODEL
         LOSS,
     {NULL},
     "bad.yaml:2:3: data: format synthetic generates its splits: remove 'train' (the test split "
     "is synthetic.spheres3d.test held-out volumes)"},
    {"data:\n  format: synthetic\n  synthetic: spheres2d\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:14: data.synthetic: unknown synthetic data set 'spheres2d'; did you mean "
     "'spheres3d'?"},
    {"data:\n  format: synthetic\n  synthetic: {spheres3d: {size: [16, 8, 16]}}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:26: data.synthetic.spheres3d: max_radius (5) is more than half the smallest "
     "size (8): objects would not fit"},
    {"data:\n  format: synthetic\n  synthetic: {spheres3d: {size: 3}}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:33: data.synthetic.spheres3d.size: expected an integer >= 4, got '3'"},
    {"data:\n  format: synthetic\n  synthetic: {spheres3d: {min_objects: 3, max_objects: "
     "2}}\n" MODEL LOSS,
     {NULL},
     "bad.yaml:3:26: data.synthetic.spheres3d: max_objects (2) is below min_objects (3)"},
    /* Overrides: the same checks, reported against the --set option. */
    {HEAD,
     {"train.batchsize=64"},
     "--set train.batchsize=64: train.batchsize: unknown key 'batchsize'; did you mean "
     "'batch_size'?"},
    {HEAD,
     {"train.batch_size=abc"},
     "--set train.batch_size=abc: train.batch_size: expected an integer >= 1, got 'abc'"},
    {HEAD,
     {"trian.epochs=3"},
     "--set trian.epochs=3: trian: unknown key 'trian'; did you mean 'train'?"},
    {HEAD,
     {"model.layers[2].dense.units=5"},
     "--set model.layers[2].dense.units=5: model.layers has 1 item; '2' is not an index from 0 "
     "to 0"},
    {HEAD,
     {"loss.smooth=2"},
     "--set loss.smooth=2: loss is 'mse', which has no key 'smooth'; to set a parameter of "
     "'mse', write loss.mse.smooth"},
    {HEAD, {"train.epochs"}, "--set train.epochs: expected KEY=VALUE, such as train.batch_size=64"},
    {HEAD,
     {"train..epochs=3"},
     "--set train..epochs=3: 'train..epochs' is not a key path such as train.optimizer.adam.lr "
     "or model.layers[1].dense.units"},
    {HEAD,
     {"train.epochs=[1"},
     "--set train.epochs=[1: the value is not valid YAML: did not find expected ',' or ']'"},
    {HEAD,
     {"train.epochs=5", "train.epochs=0"},
     "--set train.epochs=0: train.epochs: expected an integer >= 1, got '0'"},
};

static void test_bad_configs(void **state)
{
    (void)state;
    int failures = 0;
    assert_true(sizeof BAD / sizeof BAD[0] >= 25);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *b = &BAD[i];
        size_t n = b->overrides[1] != NULL ? 2 : b->overrides[0] != NULL ? 1 : 0;
        config c;
        config_error err;
        kiln_status rc = load(b->yaml, b->overrides, n, &c, &err);
        if (rc != KILN_ERR_INVALID_ARGUMENT || strcmp(err.message, b->message) != 0) {
            printf("case %zu: status %s\n  got:  %s\n  want: %s\n", i, kiln_status_name(rc),
                   rc == KILN_OK ? "(none)" : err.message, b->message);
            failures++;
        }
        /* A failed load leaves nothing to free and a config_init state. */
        assert_null(c.model.layers);
        assert_string_equal(c.device, "auto");
        config_deinit(&c);
    }
    assert_int_equal(failures, 0);
}

/* Everything that can be written differently from its default. */
static const char ROUND_TRIP[] =
    "name: \"null\"\n"
    "seed: 7\n"
    "device: \"intel:1\"\n"
    "data:\n"
    "  format: csv\n"
    "  train: {file: train.csv, label_column: 3, header: false}\n"
    "  test: {file: /data/test.csv, label_column: \"7\"}\n"
    "  validation: {fraction: 0.2, stratify: true}\n"
    "  remove_duplicates: true\n"
    "  preprocess: [{scale: 0.5}, standardize, {standardize: per_channel}, {standardize: "
    "per_feature},\n"
    "               minmax, {impute: mean}, {impute: median}, {impute: {constant: -1.5}},\n"
    "               drop_missing, {minmax: null}]\n"
    "model:\n"
    "  input: [3, 16, 16]\n"
    "  layers:\n"
    "    - {name: stem, op: conv2d, filters: 8, kernel: [3, 5], stride: [1, 2], padding: [1, 2],\n"
    "       bias: false, init: xavier_normal}\n"
    "    - batchnorm: {momentum: 0.01, eps: 0.001}\n"
    "    - leaky_relu: {slope: 0.2}\n"
    "    - maxpool2d: {size: [2, 1]}\n"
    "    - {name: branch, op: conv2d, inputs: stem, filters: 8, kernel: 3, padding: same,\n"
    "       dilation: [2, 1], init: {constant: 0.25}}\n"
    "    - avgpool2d: {size: 2, stride: [2, 1]}\n"
    "    - upsample2d: {scale: [2, 1]}\n"
    "    - {name: joined, op: concat, inputs: [branch, upsample2d6], axis: -1}\n"
    "    - {name: summed, op: add, inputs: [joined, joined, stem]}\n"
    "    - conv3d: {filters: 1, kernel: [1, 3, 3], padding: same}\n"
    "    - maxpool3d: {size: [1, 2, 2]}\n"
    "    - avgpool3d: {size: 2}\n"
    "    - upsample3d: {scale: 2}\n"
    "    - global_avgpool\n"
    "    - flatten\n"
    "    - {dense: {units: 5, init: he_normal}}\n"
    "    - gelu\n"
    "    - sigmoid\n"
    "    - tanh\n"
    "    - dropout: {rate: 0}\n"
    "    - softmax: {axis: -1}\n"
    "loss: {dice_bce: {smooth: 0.5}}\n"
    "metrics: [dice, {iou: {threshold: 0.25, smooth: 0}}]\n"
    "train:\n"
    "  epochs: 40\n"
    "  batch_size: 16\n"
    "  drop_last: true\n"
    "  shuffle: false\n"
    "  optimizer: {adamw: {lr: 3e-4, beta1: 0.85, weight_decay: 0.05, clip_norm: 1.0}}\n"
    "  schedule: {plateau: {monitor: val_dice, factor: 0.5, patience: 2, threshold_mode: abs,\n"
    "             cooldown: 1, min_lr: 1e-6, warmup_steps: 100}}\n"
    "  callbacks:\n"
    "    early_stopping: {monitor: val_iou, patience: 5, baseline: 0.3, start_from_epoch: 2,\n"
    "                     restore_best: true}\n"
    "    checkpoint: {path: ckpt/best.safetensors, save_last: true}\n"
    "    diagnose: {eval_train: true, threshold: 0.1}\n";

/* Writes `c`, reads it back from another directory, and checks both are equal and that
 * writing again gives the same text. */
static void check_round_trip(const config *c)
{
    config_error err;
    char *first = NULL, *second = NULL, where[256] = "";
    assert_int_equal(config_write_string(c, &first, &err), KILN_OK);
    config back;
    kiln_status rc = config_load_string(first, strlen(first), c->source, "/somewhere/else", NULL, 0,
                                        &back, &err);
    if (rc != KILN_OK)
        fail_msg("the effective config does not load: %s\n%s", err.message, first);
    if (!config_equal(c, &back, where, sizeof where))
        fail_msg("read back, '%s' differs:\n%s", where, first);
    assert_int_equal(config_write_string(&back, &second, &err), KILN_OK);
    assert_string_equal(first, second);
    free(first);
    free(second);
    config_deinit(&back);
}

static void test_round_trip(void **state)
{
    (void)state;
    config c = load_ok(ROUND_TRIP, NULL, 0);
    /* Spot checks that the keys were read, not defaulted. */
    assert_string_equal(c.name, "null");
    assert_string_equal(c.data.train.file, "/cfg/train.csv");
    assert_string_equal(c.data.test.file, "/data/test.csv");
    assert_int_equal(c.data.train.label_column, 3);
    assert_string_equal(c.data.train.label_name, "");
    assert_string_equal(c.data.test.label_name, "7"); /* quoted: a column named 7 */
    assert_true(c.data.test.header);
    assert_true(c.data.remove_duplicates);
    assert_int_equal(c.data.n_preprocess, 10);
    assert_int_equal(c.data.preprocess[1].standardize, CONFIG_STANDARDIZE_GLOBAL);
    assert_int_equal(c.data.preprocess[2].standardize, CONFIG_STANDARDIZE_PER_CHANNEL);
    assert_int_equal(c.data.preprocess[3].standardize, CONFIG_STANDARDIZE_PER_FEATURE);
    config_preprocess_kind kinds[] = {CONFIG_PREPROCESS_MINMAX,       CONFIG_PREPROCESS_IMPUTE,
                                      CONFIG_PREPROCESS_IMPUTE,       CONFIG_PREPROCESS_IMPUTE,
                                      CONFIG_PREPROCESS_DROP_MISSING, CONFIG_PREPROCESS_MINMAX};
    for (int i = 0; i < 6; i++)
        assert_int_equal(c.data.preprocess[4 + i].kind, kinds[i]);
    assert_int_equal(c.data.preprocess[5].impute, CONFIG_IMPUTE_MEAN);
    assert_int_equal(c.data.preprocess[6].impute, CONFIG_IMPUTE_MEDIAN);
    assert_int_equal(c.data.preprocess[7].impute, CONFIG_IMPUTE_CONSTANT);
    assert_true(c.data.preprocess[7].fill == -1.5);
    assert_int_equal(c.model.n_layers, 21);
    const config_layer *stem = &c.model.layers[0], *branch = &c.model.layers[4];
    assert_string_equal(stem->name, "stem");
    assert_int_equal(stem->spec.conv.kernel[1], 5);
    assert_int_equal(stem->spec.conv.padding[1], 2);
    assert_false(stem->spec.conv.bias);
    assert_int_equal(stem->spec.conv.init, KILN_INIT_XAVIER_NORMAL);
    assert_int_equal(c.model.layers[3].spec.pool.stride[0], 2); /* = size */
    assert_int_equal(c.model.layers[3].spec.pool.stride[1], 1);
    assert_true(branch->spec.conv.same);
    assert_int_equal(branch->spec.conv.init, KILN_INIT_CONSTANT);
    assert_true(branch->spec.conv.init_value == 0.25f);
    assert_string_equal(branch->inputs[0], "stem");
    assert_int_equal(c.model.layers[8].spec.n_inputs, 3);
    assert_int_equal(c.model.layers[7].spec.axis.axis, -1);
    assert_int_equal(c.train.optimizer.kind, KILN_OPTIMIZER_ADAMW);
    assert_true(c.train.optimizer.weight_decay == 0.05f);
    assert_int_equal(c.train.schedule.mode, CONFIG_MODE_MAX); /* val_dice */
    assert_int_equal(c.train.schedule.threshold_mode, CONFIG_THRESHOLD_ABS);
    assert_int_equal(c.train.early_stopping.mode, CONFIG_MODE_MAX);
    assert_true(c.train.early_stopping.has_baseline && c.train.early_stopping.baseline == 0.3);
    assert_string_equal(c.train.checkpoint.monitor, "val_loss"); /* the default, with val */
    assert_string_equal(c.train.checkpoint.path, "/cfg/ckpt/best.safetensors");
    check_round_trip(&c);

    /* config_equal notices a change and names its key. */
    config d = load_ok(ROUND_TRIP, NULL, 0);
    char where[256];
    assert_true(config_equal(&c, &d, where, sizeof where));
    d.model.layers[0].spec.conv.stride[1] = 3;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "model.layers[0].conv2d.stride");
    d.model.layers[0].spec.conv.stride[1] = 2;
    d.data.preprocess[7].fill = 0;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "data.preprocess[7].impute.constant");
    d.data.preprocess[7].fill = -1.5;
    d.data.preprocess[2].standardize = CONFIG_STANDARDIZE_GLOBAL;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "data.preprocess[2].standardize");
    d.data.preprocess[2].standardize = CONFIG_STANDARDIZE_PER_CHANNEL;
    d.data.remove_duplicates = false;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "data.remove_duplicates");
    d.data.remove_duplicates = true;
    d.train.schedule.factor = 0.25;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "train.schedule.plateau.factor");
    config_deinit(&d);

    kiln_schedule s;
    config_fill_schedule(&c, &s);
    assert_int_equal(s.kind, KILN_SCHEDULE_PLATEAU);
    assert_true(s.maximize && s.absolute);
    assert_true(s.base_lr == (double)3e-4f && s.factor == 0.5 && s.warmup_steps == 100);
    config_deinit(&c);

    config e = load_ok(DESIGN_EXAMPLE, NULL, 0);
    check_round_trip(&e);
    config_deinit(&e);
}

static void test_overrides(void **state)
{
    (void)state;
    char cwd[CONFIG_MAX_PATH], want[CONFIG_MAX_PATH + 64];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *sets[] = {
        "train.batch_size=64",
        "model.layers.0.dense.units=512",
        "loss=dice",
        "loss.dice.smooth=2",
        "train.optimizer={sgd: {lr: 0.1, momentum: 0.9}}",
        "train.callbacks.checkpoint.path=out/ckpt.safetensors",
        "data.validation.fraction=0.25",
        "train.callbacks.early_stopping.patience=4",
        "train.epochs=5",
        "train.epochs=6",
        "metrics=[dice]",
        "train.schedule.cosine.min_lr=1e-5",
    };
    size_t n = sizeof sets / sizeof sets[0];
    config c = load_ok(HEAD "train: {batch_size: 32}\n", sets, n);
    assert_int_equal(c.train.batch_size, 64);
    assert_int_equal(c.model.layers[0].spec.dense.units, 512);
    assert_int_equal(c.model.layers[0].line, 7); /* the layer itself is still the file's */
    assert_int_equal(c.loss.kind, KILN_LOSS_DICE);
    assert_true(c.loss.smooth == 2.0f);
    assert_int_equal(c.train.optimizer.kind, KILN_OPTIMIZER_SGD);
    assert_true(c.train.optimizer.lr == 0.1f && c.train.optimizer.momentum == 0.9f);
    snprintf(want, sizeof want, "%s/out/ckpt.safetensors", cwd); /* overrides: the cwd */
    assert_string_equal(c.train.checkpoint.path, want);
    assert_string_equal(c.data.train.images, "/cfg/a.gz"); /* the file: its directory */
    assert_true(c.data.validation_fraction == 0.25);
    assert_true(c.train.early_stopping.enabled);
    assert_int_equal(c.train.early_stopping.patience, 4);
    assert_string_equal(c.train.early_stopping.monitor, "val_loss");
    assert_int_equal(c.train.epochs, 6);
    assert_int_equal(c.train.schedule.kind, KILN_SCHEDULE_COSINE);
    assert_int_equal(c.train.schedule.t_max, 6); /* train.epochs */
    assert_true(c.train.schedule.min_lr == 1e-5);
    check_round_trip(&c);

    config_error err;
    char where[128];
    assert_int_equal(config_set_device(&c, "gpu", &err), KILN_OK);
    assert_string_equal(c.device, "gpu");
    char long_spec[400];
    memset(long_spec, 'x', sizeof long_spec - 1);
    long_spec[sizeof long_spec - 1] = '\0';
    assert_int_equal(config_set_device(&c, long_spec, &err), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "--device: expected a device spec of at most 255 bytes");
    assert_string_equal(c.device, "gpu");
    config_deinit(&c);

    /* A whole layer replaced by an override has no file position; a bad device spec is left
     * for the library to reject when the device is opened. */
    const char *layer[] = {"model.layers[0]={name: head, op: dense, units: 7}", "device=amd:x"};
    c = load_ok(HEAD, layer, 2);
    assert_string_equal(c.model.layers[0].name, "head");
    assert_int_equal(c.model.layers[0].line, 0);
    assert_string_equal(config_layer_where(&c, 0, where, sizeof where), "--set: model.layers[0]");
    assert_string_equal(c.device, "amd:x");
    config_deinit(&c);
}

/* The shape of the output of the graph the library builds from `c`. */
static kiln_shape built_output_shape(const config *c)
{
    kiln_context *ctx = kiln_test_context();
    kiln_graph *graph = NULL;
    kiln_value input, target, output, loss;
    config_error err;
    if (config_build_graph(c, ctx, &graph, &input, &target, &output, &loss, &err) != KILN_OK)
        fail_msg("%s", err.message);
    kiln_shape shape = *kiln_graph_value_shape(graph, output);
    kiln_graph_destroy(graph);
    kiln_context_destroy(ctx);
    return shape;
}

static void check_model_file(const char *file, int64_t batch, size_t n_layers)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", KILN_SOURCE_DIR, file);
    config c;
    config_error err;
    if (config_load_file(path, NULL, 0, &c, &err) != KILN_OK)
        fail_msg("%s", err.message);
    assert_int_equal(c.train.batch_size, batch);
    assert_int_equal(c.model.n_layers, n_layers);
    assert_string_equal(c.device, "auto");
    assert_true(c.train.checkpoint.enabled);
    assert_non_null(strstr(c.train.checkpoint.path, "/runs/"));
    assert_int_equal(c.train.optimizer.kind, KILN_OPTIMIZER_ADAM);
    assert_true(c.train.optimizer.lr == 1e-3f);
    assert_true(c.train.epochs >= 10 && c.train.epochs <= 20);
    check_round_trip(&c);

    /* The library builds it: (batch, 10) logits. */
    kiln_shape shape = built_output_shape(&c);
    assert_int_equal(shape.ndim, 2);
    assert_int_equal(shape.dim[0], batch);
    assert_int_equal(shape.dim[1], 10);
    config_deinit(&c);
}

static void test_model_files(void **state)
{
    (void)state;
    check_model_file("fashion_mnist_mlp.yaml", 128, 5);
    check_model_file("fashion_mnist_cnn.yaml", 64, 10);

    char path[1024];
    snprintf(path, sizeof path, "%s/models/fashion_mnist_cnn.yaml", KILN_SOURCE_DIR);
    config c;
    config_error err;
    assert_int_equal(config_load_file(path, NULL, 0, &c, &err), KILN_OK);
    int filters[] = {32, 64};
    for (int b = 0; b < 2; b++) {
        const kiln_layer_spec *conv = &c.model.layers[3 * b].spec;
        const kiln_layer_spec *pool = &c.model.layers[3 * b + 2].spec;
        assert_int_equal(conv->kind, KILN_LAYER_CONV2D);
        assert_int_equal(conv->conv.filters, filters[b]);
        assert_true(conv->conv.kernel[0] == 3 && conv->conv.kernel[1] == 3 && conv->conv.same);
        assert_int_equal(c.model.layers[3 * b + 1].spec.kind, KILN_LAYER_RELU);
        assert_int_equal(pool->kind, KILN_LAYER_MAXPOOL2D);
        assert_true(pool->pool.size[0] == 2 && pool->pool.stride[1] == 2);
    }
    assert_int_equal(c.model.layers[6].spec.kind, KILN_LAYER_FLATTEN);
    assert_int_equal(c.model.layers[7].spec.dense.units, 128);
    assert_int_equal(c.model.layers[9].spec.dense.units, 10);
    config_deinit(&c);

    /* The 3D U-Net: synthetic volumes, a per-voxel sigmoid output of the input's shape. */
    snprintf(path, sizeof path, "%s/models/seg3d_unet.yaml", KILN_SOURCE_DIR);
    if (config_load_file(path, NULL, 0, &c, &err) != KILN_OK)
        fail_msg("%s", err.message);
    assert_int_equal(c.data.format, CONFIG_FORMAT_SYNTHETIC);
    assert_true(config_has_test(&c) && c.data.spheres3d.size[2] == 16);
    assert_true(c.train.diagnose.eval_train);
    check_round_trip(&c);
    kiln_shape shape = built_output_shape(&c);
    assert_int_equal(shape.ndim, 5);
    assert_int_equal(shape.dim[0], c.train.batch_size);
    assert_true(shape.dim[1] == 1 && shape.dim[2] == 16 && shape.dim[4] == 16);
    config_deinit(&c);
}

static void test_files(void **state)
{
    (void)state;
    char *dir = kiln_test_make_temp_dir("config");
    char path[1024];
    snprintf(path, sizeof path, "%s/my_model.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(HEAD, f);
    fclose(f);
    config c;
    config_error err;
    assert_int_equal(config_load_file(path, NULL, 0, &c, &err), KILN_OK);
    assert_string_equal(c.name, "my_model");
    char want[1100];
    snprintf(want, sizeof want, "%s/a.gz", dir);
    assert_string_equal(c.data.train.images, want);
    config_deinit(&c);

    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    assert_int_equal(config_load_file(path, NULL, 0, &c, &err), KILN_ERR_IO);
    snprintf(want, sizeof want, "cannot read config '%s': No such file or directory", path);
    assert_string_equal(err.message, want);
    kiln_test_remove_dir(dir);
    free(dir);
}

/* A shape error found by the library is reported at the layer's line in the file. */
static void test_build_error_location(void **state)
{
    (void)state;
    config c = load_ok(DATA "model:\n  input: [1, 8, 8]\n  layers:\n"
                            "    - conv2d: {filters: 2, kernel: 3}\n"
                            "    - dense: {units: 3}\n" LOSS,
                       NULL, 0);
    kiln_context *ctx = kiln_test_context();
    kiln_graph *graph = NULL;
    kiln_value input, target, output, loss;
    config_error err;
    assert_int_equal(config_build_graph(&c, ctx, &graph, &input, &target, &output, &loss, &err),
                     KILN_ERR_SHAPE);
    assert_null(graph);
    const char *prefix = "bad.yaml:8:7: model.layers[1]: layer 1 'dense1' (dense): ";
    if (strncmp(err.message, prefix, strlen(prefix)) != 0)
        fail_msg("got: %s", err.message);
    assert_contains(err.message, "flatten");
    kiln_context_destroy(ctx);
    config_deinit(&c);
}

typedef struct doc_check {
    const char *text;
    int missing;
} doc_check;

static void check_key(const char *key, void *user)
{
    doc_check *d = user;
    char quoted[256];
    snprintf(quoted, sizeof quoted, "`%s`", key);
    if (strstr(d->text, quoted) == NULL) {
        printf("docs/CONFIG.md does not document %s\n", quoted);
        d->missing++;
    }
}

static void test_docs_name_every_key(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/CONFIG.md", KILN_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    doc_check d = {text, 0};
    config_visit_keys(check_key, &d);
    assert_int_equal(d.missing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_defaults_and_writer),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_model_files),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_build_error_location),
        cmocka_unit_test(test_docs_name_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
