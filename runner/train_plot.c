/*
 * `kiln train`'s pictures and summary: plot.svg (rewritten after every epoch, so an interrupted
 * run has one) draws, for the loss and each metric, the training and validation curves against
 * the epoch, by hand in plain SVG 1.1 with axes, labelled ticks and a legend; summary.json
 * (written at the end) holds the outcome of the run. Both go through train_write_atomic. Non-
 * finite values are skipped, a lone point becomes a dot and a flat curve gets a padded range.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

enum { PANEL_W = 360, PANEL_H = 240, COLUMNS = 2 };
static const double LEFT = 58, RIGHT = 12, TOP = 40, BOTTOM = 38;
static const char *const COLORS[2] = {"#1f77b4", "#ff7f0e"};

/* A "nice" step (1, 2 or 5 times a power of ten) giving about `ticks` intervals over `range`. */
static double nice_step(double range, double ticks)
{
    double raw = range / ticks, power = pow(10, floor(log10(raw)));
    double f = raw / power;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * power;
}

static int find_value(const train_epoch_values *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->names[i], name) == 0)
            return i;
    return -1;
}

/* The text of a name, with the characters XML reserves escaped. */
static void append_escaped(train_text *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '<')
            train_append(b, "&lt;");
        else if (*s == '>')
            train_append(b, "&gt;");
        else if (*s == '&')
            train_append(b, "&amp;");
        else
            train_append(b, "%c", *s);
    }
}

typedef struct panel_frame {
    double xmin, xmax;      /* epochs (from 1) */
    double ymin, ymax;      /* value range after padding */
    double left, top, w, h; /* plot area */
} panel_frame;

static double px(const panel_frame *f, double epoch)
{
    return f->left + (epoch - f->xmin) / (f->xmax - f->xmin) * f->w;
}

static double py(const panel_frame *f, double value)
{
    return f->top + f->h - (value - f->ymin) / (f->ymax - f->ymin) * f->h;
}

static void draw_axes(train_text *b, const panel_frame *f, int64_t n_epochs)
{
    train_append(b, "<g stroke=\"#000\" stroke-width=\"1\">\n");
    train_append(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left,
                 f->top + f->h, f->left + f->w, f->top + f->h);
    train_append(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left, f->top,
                 f->left, f->top + f->h);
    train_append(b, "</g>\n<g font-family=\"sans-serif\" font-size=\"10\" fill=\"#000\">\n");
    double xstep = fmax(1, ceil(nice_step(fmax(1, f->xmax - f->xmin), 5)));
    for (double e = ceil(f->xmin); e <= (double)n_epochs + 1e-9; e += xstep) {
        double x = px(f, e);
        train_append(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                     x, f->top + f->h, x, f->top + f->h + 4);
        train_append(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", x,
                     f->top + f->h + 15, e);
    }
    double ystep = nice_step(f->ymax - f->ymin, 4);
    for (double v = ceil(f->ymin / ystep) * ystep; v <= f->ymax + 1e-9 * ystep; v += ystep) {
        double y = py(f, v), shown = fabs(v) < 1e-9 * ystep ? 0 : v;
        train_append(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                     f->left - 4, y, f->left, y);
        train_append(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                     f->left - 6, y + 3.5, shown);
    }
    train_append(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n",
                 f->left + f->w / 2, f->top + f->h + 30);
    train_append(b, "</g>\n");
}

/* One series: a polyline through its finite points, or a dot when there is only one. */
static void draw_series(train_text *b, const panel_frame *f, const train_log *log, int index,
                        const char *color, bool dashed)
{
    int64_t n_finite = 0, last = 0;
    for (int64_t e = 0; e < log->n_history; e++)
        if (isfinite(log->history[e].values[index])) {
            n_finite++;
            last = e;
        }
    if (n_finite == 1) {
        train_append(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                     px(f, (double)log->history[last].epoch + 1),
                     py(f, log->history[last].values[index]), color);
        return;
    }
    if (n_finite == 0)
        return;
    train_append(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", color,
                 dashed ? " stroke-dasharray=\"5,3\"" : "");
    for (int64_t e = 0; e < log->n_history; e++) {
        double v = log->history[e].values[index];
        if (isfinite(v))
            train_append(b, "%.1f,%.1f ", px(f, (double)log->history[e].epoch + 1), py(f, v));
    }
    train_append(b, "\"/>\n");
}

/* The panel of `name` (column `train`, with `val` or -1) at (x0, y0). */
static void draw_panel(train_text *b, const train_log *log, const char *name, int train, int val,
                       double x0, double y0)
{
    panel_frame f = {.left = x0 + LEFT, .top = y0 + TOP};
    f.w = PANEL_W - LEFT - RIGHT;
    f.h = PANEL_H - TOP - BOTTOM;
    int64_t first = log->history[0].epoch + 1;
    int64_t n_epochs = log->history[log->n_history - 1].epoch + 1;
    f.xmin = log->n_history > 1 ? (double)first : (double)first - 0.5;
    f.xmax = log->n_history > 1 ? (double)n_epochs : (double)n_epochs + 0.5;
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t e = 0; e < log->n_history; e++)
        for (int s = 0; s < 2; s++) {
            int i = s == 0 ? train : val;
            double v = i >= 0 ? log->history[e].values[i] : NAN;
            if (isfinite(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
    if (!isfinite(lo)) {
        lo = 0;
        hi = 1;
    }
    double pad =
        hi - lo > 1e-12 * fmax(fabs(lo), fabs(hi)) ? 0.05 * (hi - lo) : fmax(0.1 * fabs(hi), 0.5);
    f.ymin = lo - pad;
    f.ymax = hi + pad;
    train_append(b,
                 "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#fff\" "
                 "stroke=\"#ccc\"/>\n",
                 x0, y0, PANEL_W, PANEL_H);
    train_append(b,
                 "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"12\" "
                 "font-weight=\"bold\">",
                 f.left, y0 + 16);
    append_escaped(b, name);
    train_append(b, "</text>\n");
    draw_axes(b, &f, n_epochs);
    draw_series(b, &f, log, train, COLORS[0], false);
    if (val >= 0)
        draw_series(b, &f, log, val, COLORS[1], true);
    /* The legend, top right. */
    for (int s = 0; s < (val >= 0 ? 2 : 1); s++) {
        double lx = x0 + PANEL_W - RIGHT - 92, ly = y0 + 10 + 12 * s;
        train_append(b,
                     "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                     "stroke-width=\"2\"%s/>\n",
                     lx, ly, lx + 18, ly, COLORS[s], s == 1 ? " stroke-dasharray=\"5,3\"" : "");
        train_append(b,
                     "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" "
                     "font-size=\"10\">%s</text>\n",
                     lx + 22, ly + 3.5, s == 0 ? "train" : "validation");
    }
}

kiln_status train_plot_write(const train_log *log, config_error *err)
{
    if (log->n_history == 0)
        return KILN_OK;
    const train_epoch_values *first = &log->history[0];
    int panels[TRAIN_MAX_VALUES], n_panels = 0;
    for (int i = 0; i < first->n; i++)
        if (strncmp(first->names[i], "val_", 4) != 0)
            panels[n_panels++] = i;
    int columns = n_panels < COLUMNS ? n_panels : COLUMNS;
    int rows = (n_panels + columns - 1) / columns;
    train_text b = {0};
    train_append(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    train_append(&b,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                 "height=\"%d\" viewBox=\"0 0 %d %d\">\n",
                 columns * PANEL_W, rows * PANEL_H, columns * PANEL_W, rows * PANEL_H);
    for (int p = 0; p < n_panels; p++) {
        const char *name = first->names[panels[p]];
        char val_name[TRAIN_MAX_NAME + 8];
        snprintf(val_name, sizeof val_name, "val_%s", name);
        draw_panel(&b, log, name, panels[p], find_value(first, val_name),
                   (double)(p % columns * PANEL_W), (double)(p / columns * PANEL_H));
    }
    train_append(&b, "</svg>\n");
    return train_write_text(log->dir, "plot.svg", &b, err);
}

/* JSON has no NaN or infinity: those are written as null. */
static void append_json_number(train_text *b, double v)
{
    if (isfinite(v))
        train_append(b, "%.9g", v);
    else
        train_append(b, "null");
}

kiln_status train_summary_write(const train_log *log, const train_result *result,
                                const char *data_cache, const char *monitor, double seconds,
                                double first_step_seconds, config_error *err)
{
    train_text b = {0};
    train_append(&b, "{\n  \"epochs_run\": %lld,\n  \"stop_reason\": \"%s\",\n",
                 (long long)result->epochs_run, result->stop_reason);
    train_append(&b, "  \"best_epoch\": ");
    if (result->best_epoch >= 0)
        train_append(&b, "%lld", (long long)result->best_epoch + 1);
    else
        train_append(&b, "null");
    train_append(&b, ",\n  \"monitor\": ");
    if (monitor != NULL)
        train_append(&b, "\"%s\"", monitor);
    else
        train_append(&b, "null");
    /* The best value, from the history (a resumed run's earlier epochs included). */
    double best = NAN;
    for (int64_t e = 0; e < log->n_history && monitor != NULL; e++) {
        int i = find_value(&log->history[e], monitor);
        if (log->history[e].epoch == result->best_epoch && i >= 0)
            best = log->history[e].values[i];
    }
    train_append(&b, ",\n  \"best_value\": ");
    append_json_number(&b, best);
    train_append(&b, ",\n  \"restored\": %s,\n  \"test\": ", result->restored ? "true" : "false");
    if (result->has_test) {
        train_append(&b, "{");
        for (int i = 0; i < result->n_test; i++) {
            train_append(&b, "%s\"%s\": ", i > 0 ? ", " : "", result->test_names[i]);
            append_json_number(&b, result->test_values[i]);
        }
        train_append(&b, "}");
    } else {
        train_append(&b, "null");
    }
    if (result->confusion != NULL) { /* rows: true class, columns: predicted */
        int64_t c = result->n_classes;
        train_append(&b, ",\n  \"confusion\": [");
        for (int64_t i = 0; i < c * c; i++)
            train_append(&b, "%s%lld%s", i % c == 0 ? (i > 0 ? ", [" : "[") : ", ",
                         (long long)result->confusion[i], i % c == c - 1 ? "]" : "");
        train_append(&b, "]");
    }
    train_append(&b, ",\n  \"seconds\": %.3f,\n  \"batch_load_seconds\": %.3f", seconds,
                 result->batch_load_seconds);
    train_append(&b, ",\n  \"first_step_seconds\": ");
    append_json_number(&b, first_step_seconds >= 0 ? first_step_seconds : NAN);
    train_append(&b, ",\n  \"data_cache\": \"%s\"\n}\n", data_cache);
    return train_write_text(log->dir, "summary.json", &b, err);
}
