#ifndef CORE_LOG_H
#define CORE_LOG_H

/*
 * One line per event on stderr: "ts level component msg". The level check
 * happens before the arguments are evaluated (Redis serverLog).
 */
enum core_log_level {
    CORE_LOG_DEBUG = 0,
    CORE_LOG_INFO,
    CORE_LOG_WARN,
    CORE_LOG_ERROR,
};

/* Process-wide settings, set once from main() before threads start. */
void core_log_init(const char *component, enum core_log_level level);
enum core_log_level core_log_level(void);
/* Parses "debug|info|warn|error"; returns -EINVAL on anything else. */
int core_log_parse_level(const char *s, enum core_log_level *out);
void core_log_write(enum core_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define CORE_LOG(level, ...)                                                   \
    do {                                                                       \
        if ((level) >= core_log_level())                                       \
            core_log_write((level), __VA_ARGS__);                              \
    } while (0)
#define CORE_DEBUG(...) CORE_LOG(CORE_LOG_DEBUG, __VA_ARGS__)
#define CORE_INFO(...)  CORE_LOG(CORE_LOG_INFO, __VA_ARGS__)
#define CORE_WARN(...)  CORE_LOG(CORE_LOG_WARN, __VA_ARGS__)
#define CORE_ERROR(...) CORE_LOG(CORE_LOG_ERROR, __VA_ARGS__)

#endif
