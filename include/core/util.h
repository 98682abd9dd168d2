#ifndef CORE_UTIL_H
#define CORE_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Wall clock in seconds (double) and monotonic milliseconds. */
double core_now(void);
unsigned long long core_mono_ms(void);

/*
 * $SKY_HOME (default ~/.sky), created 0700 if missing. Caller frees the
 * returned strings. core_home_path joins a relative path under it.
 */
char *core_home_dir(void);
char *core_home_path(const char *rel);
/* core_home_path without creating $SKY_HOME: for questions, which leave no trace. */
char *core_home_peek(const char *rel);
/* mkdir -p with <mode>; 0 if it exists already. */
int core_mkdir_p(const char *path, mode_t mode);
/* rm -rf; 0 if it did not exist. */
int core_rm_rf(const char *path);
/* Reads a whole file (capped at <max> bytes, -EFBIG beyond). Caller frees *out. */
int core_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes atomically through <path>.tmp + rename. */
int core_write_file(const char *path, const char *data, size_t len, mode_t mode);

/*
 * The bearer token in <path> (created 0600 with 32 random hex bytes if
 * missing). Caller frees *out.
 */
int core_token_load(const char *path, char **out);

/*
 * Path of a sibling program: the directory of /proc/self/exe, then
 * SKY_BINARY_DIR/<subdir>, then $PATH. Caller frees.
 */
char *core_find_program(const char *name);

/*
 * Starts <argv> as a detached daemon (new session, stdin /dev/null,
 * stdout/stderr appended to <logfile>). Returns the pid or a negative errno.
 */
pid_t core_spawn_daemon(char *const argv[], const char *logfile);

/*
 * A finite number in [lo, hi], the whole string (strtod's leading blanks
 * aside). 0, or -EINVAL with *out untouched.
 */
int core_parse_num(const char *s, double lo, double hi, double *out);

/*
 * Enums whose members and names come from one X-macro list (CORE_ERRNO_MAP
 * style): the header expands the list into the enum, the .c file into a name
 * table indexed by value, and these two look values and names up in it.
 */
/* names[v], or <unknown> when v is out of range. */
const char *core_enum_name(const char *const *names, size_t n, int v, const char *unknown);
/* The value whose name is <s> exactly, or -1. */
int core_enum_value(const char *const *names, size_t n, const char *s);

/* Human-readable durations as the reference prints them:
 * "1m 17s", "2h 47m 18s" (absolute) and "3 mins ago" (relative). */
void core_fmt_duration(double seconds, char *out, size_t outlen);
void core_fmt_ago(double seconds, char *out, size_t outlen);

#endif
