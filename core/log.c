#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>

#include "core/log.h"

/*
 * Written once by main() before any thread starts and only read afterwards,
 * the same contract as Redis's server.verbosity.
 */
static struct {
    char component[32];
    enum core_log_level level;
} g_log = {"sky", CORE_LOG_INFO};

void core_log_init(const char *component, enum core_log_level level)
{
    snprintf(g_log.component, sizeof(g_log.component), "%s", component);
    g_log.level = level;
}

enum core_log_level core_log_level(void)
{
    return g_log.level;
}

int core_log_parse_level(const char *s, enum core_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum core_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void core_log_write(enum core_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), tags[level], g_log.component);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write(2) per line keeps lines from several threads whole. */
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}
