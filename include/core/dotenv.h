#ifndef CORE_DOTENV_H
#define CORE_DOTENV_H

#include <stddef.h>

/*
 * `--env-file` files, in the dotenv format the reference reads with
 * python-dotenv: one `KEY=VALUE` per line, an optional `export ` before the
 * key, blank lines and `#` comments skipped. A value is taken as is, or
 * single-quoted (literal, may span lines), or double-quoted (\n \t \r \\ \"
 * escapes, may span lines). An unquoted value ends at ` #` and loses its
 * surrounding blanks.
 */

/* Called for each entry in file order; a negative return stops the parse. */
typedef int (*core_dotenv_fn)(const char *key, const char *value, void *arg);

/*
 * Parses <text> (<len> bytes; <filename> only names errors). 0, the
 * callback's negative return, or CORE_ESPEC with *err = "file:line: what".
 */
int core_dotenv_parse(const char *text, size_t len, const char *filename, core_dotenv_fn fn,
                      void *arg, char **err);

/* Reads <path> (at most 1 MiB) and parses it. Same returns; a read error sets *err too. */
int core_dotenv_load(const char *path, core_dotenv_fn fn, void *arg, char **err);

#endif
