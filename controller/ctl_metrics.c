/*
 * The Prometheus text writer of the controllers' /metrics, and the facts
 * every controller exports about itself.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/util.h"
#include "ctl_metrics.h"

static void grow(ctl_prom_t *p, size_t more)
{
    if (p->len + more + 1 <= p->cap)
        return;
    while (p->len + more + 1 > p->cap)
        p->cap = p->cap ? p->cap * 2 : 4096;
    p->buf = core_xrealloc(p->buf, p->cap);
}

static void put(ctl_prom_t *p, const char *s, size_t n)
{
    grow(p, n);
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(ctl_prom_t *p, const char *s)
{
    put(p, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also escape ". */
static void put_escaped(ctl_prom_t *p, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(p, "\\\\", 2);
        else if (*s == '\n')
            put(p, "\\n", 2);
        else if (*s == '"' && quote)
            put(p, "\\\"", 2);
        else
            put(p, s, 1);
    }
}

void ctl_prom_family(ctl_prom_t *p, const char *name, const char *type, const char *help)
{
    puts_(p, "# HELP ");
    puts_(p, name);
    puts_(p, " ");
    put_escaped(p, help, 0);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    puts_(p, " ");
    puts_(p, type);
    puts_(p, "\n");
}

void ctl_prom_sample(ctl_prom_t *p, const char *name, double value, ...)
{
    va_list ap;
    const char *k;
    char num[40];
    int first = 1;

    puts_(p, name);
    va_start(ap, value);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        puts_(p, first ? "{" : ",");
        puts_(p, k);
        puts_(p, "=\"");
        put_escaped(p, v ? v : "", 1);
        puts_(p, "\"");
        first = 0;
    }
    va_end(ap);
    if (!first)
        puts_(p, "}");
    if (isnan(value))
        snprintf(num, sizeof(num), " NaN\n");
    else if (isinf(value))
        snprintf(num, sizeof(num), " %sInf\n", value > 0 ? "+" : "-");
    else if (fabs(value) < 1e15 && value == (double)(long long)value)
        snprintf(num, sizeof(num), " %lld\n", (long long)value);
    else
        snprintf(num, sizeof(num), " %.17g\n", value);
    puts_(p, num);
}

char *ctl_prom_take(ctl_prom_t *p, size_t *len)
{
    char *out = p->buf ? p->buf : core_xstrdup("");

    *len = p->len;
    memset(p, 0, sizeof(*p));
    return out;
}

void ctl_metrics_proc_start(ctl_metrics_proc_t *m, const char *dir)
{
    char *path = core_xasprintf("%s/controller.starts", dir), *text = NULL, buf[32];
    unsigned long long starts = 0;
    size_t len;

    if (core_read_file(path, 64, &text, &len) == 0)
        starts = strtoull(text, NULL, 10);
    free(text);
    m->restarts = starts;
    m->started_at = core_now();
    snprintf(buf, sizeof(buf), "%llu\n", starts + 1);
    core_write_file(path, buf, strlen(buf), 0644);
    free(path);
}

void ctl_metrics_proc_render(ctl_prom_t *p, const ctl_metrics_proc_t *m)
{
    ctl_prom_family(p, "sky_controller_restarts_total", "counter",
                    "Times this controller started again over an existing state (SKY_HOME).");
    ctl_prom_sample(p, "sky_controller_restarts_total", (double)m->restarts, NULL);
    ctl_prom_family(p, "sky_controller_start_time_seconds", "gauge",
                    "When this controller process started, in seconds since the epoch.");
    ctl_prom_sample(p, "sky_controller_start_time_seconds", m->started_at, NULL);
}
