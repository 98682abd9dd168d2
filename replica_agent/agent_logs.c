#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "core/log.h"
#include "core/mem.h"

/*
 * GET /tasks/N/logs: setup.log then run.log as one chunked text/plain
 * stream, read from disk in 64 KiB pieces. Backpressure: a pump runs from a
 * timer, sends while the connection's write queue is under a high-water mark
 * and re-arms itself otherwise, so a slow reader costs at most ~HIGH_WATER of
 * memory whatever the log size.
 *
 * Follow mode ends at a file's EOF only when the writer of that file was
 * already done *before* the read that hit EOF (setup.log: the task left
 * SETTING_UP; run.log: the task is terminal). Status changes happen on this
 * loop thread after the process has exited, so no byte can be missed.
 */

#define CHUNK               (64 * 1024)
#define HIGH_WATER          (512 * 1024)
#define MAX_CHUNKS_PER_TICK 16
#define BACKOFF_MIN_MS      1
#define BACKOFF_MAX_MS      32
#define FOLLOW_POLL_MS      100

struct agent_logstream {
    agent_t *a;
    core_http_conn_t *conn;
    int task_id;
    int follow;
    int part; /* 0 setup.log, 1 run.log, 2 done */
    int fd;   /* for <part>, -1 until the file exists */
    off_t off[2];
    int peer_gone;
    unsigned backoff_ms; /* doubles while the peer stays slow */
    uv_timer_t timer;
    agent_logstream_t *next;
};

static const char *const part_file[2] = {"setup.log", "run.log"};

static void unlink_stream(agent_logstream_t *s)
{
    agent_logstream_t **pp = &s->a->streams;
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->next;
    if (*pp == s)
        *pp = s->next;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Ends the response exactly once and frees the stream. */
static void stream_finish(agent_logstream_t *s)
{
    unlink_stream(s);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    core_http_conn_on_close(s->conn, NULL, NULL);
    core_http_stream_end(s->conn);
    s->conn = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void on_pump(uv_timer_t *h);

static void on_peer_close(core_http_conn_t *c, void *arg)
{
    agent_logstream_t *s = arg;
    /* May run inside stream_write: only flag it, the pump cleans up. */
    s->peer_gone = 1;
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_pump, 0, 0);
}

/* Is the writer of <part> finished, so that EOF is final? */
static int writer_done(const agent_task_t *t, int part)
{
    if (part == 0)
        return t->status != CORE_AGENT_PENDING && t->status != CORE_AGENT_SETTING_UP;
    return core_agent_status_is_terminal(t->status);
}

static int open_part(agent_logstream_t *s)
{
    if (s->fd >= 0)
        return 1;
    char *path = agent_task_file(s->a, s->task_id, part_file[s->part]);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    return s->fd >= 0;
}

static void next_part(agent_logstream_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->part++;
}

static void on_pump(uv_timer_t *h)
{
    agent_logstream_t *s = h->data;
    char *buf = NULL;
    if (s->peer_gone || s->a->stopping)
        goto end;
    agent_task_t *t = agent_task_find(s->a, s->task_id);
    if (t == NULL)
        goto end;
    buf = core_xmalloc(CHUNK);
    for (int i = 0; i < MAX_CHUNKS_PER_TICK; i++) {
        if (s->part >= 2)
            goto end;
        if (core_http_conn_write_queue(s->conn) > HIGH_WATER) {
            s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
            if (s->backoff_ms > BACKOFF_MAX_MS)
                s->backoff_ms = BACKOFF_MAX_MS;
            uv_timer_start(&s->timer, on_pump, s->backoff_ms, 0);
            goto out;
        }
        s->backoff_ms = 0;
        int done = writer_done(t, s->part);
        ssize_t n = 0;
        if (open_part(s)) {
            n = pread(s->fd, buf, CHUNK, s->off[s->part]);
            if (n < 0) {
                CORE_WARN("task %d: reading %s: %s", s->task_id, part_file[s->part],
                          strerror(errno));
                goto end;
            }
        }
        if (n > 0) {
            s->off[s->part] += n;
            if (core_http_stream_write(s->conn, buf, (size_t)n) < 0 || s->peer_gone)
                goto end;
            continue;
        }
        if (done || !s->follow) {
            next_part(s);
            continue;
        }
        uv_timer_start(&s->timer, on_pump, FOLLOW_POLL_MS, 0);
        goto out;
    }
    /* Sent a burst: yield to other connections, then continue. */
    uv_timer_start(&s->timer, on_pump, 0, 0);
out:
    free(buf);
    return;
end:
    free(buf);
    stream_finish(s);
}

/* Start offsets for the last <tail> lines of setup.log + run.log. */
static void apply_tail(agent_logstream_t *s, long tail)
{
    long lines = tail;
    for (int part = 1; part >= 0; part--) {
        char *path = agent_task_file(s->a, s->task_id, part_file[part]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        if (fd < 0)
            continue;
        struct stat st;
        off_t off = 0;
        if (fstat(fd, &st) == 0) {
            if (lines <= 0)
                off = st.st_size;
            else if (agent_tail_offset(fd, st.st_size, &lines, &off) < 0)
                off = 0;
        }
        close(fd);
        s->off[part] = off;
    }
}

void agent_logs_serve(agent_t *a, core_http_conn_t *c, agent_task_t *t, int follow, long tail)
{
    if (core_http_stream_begin(c, 200, "text/plain; charset=utf-8") < 0) {
        core_http_stream_end(c);
        return;
    }
    agent_logstream_t *s = core_xcalloc(1, sizeof(*s));
    s->a = a;
    s->conn = c;
    s->task_id = t->id;
    s->follow = follow;
    s->fd = -1;
    if (tail >= 0)
        apply_tail(s, tail);
    uv_timer_init(a->loop, &s->timer);
    s->timer.data = s;
    s->next = a->streams;
    a->streams = s;
    core_http_conn_on_close(c, on_peer_close, s);
    uv_timer_start(&s->timer, on_pump, 0, 0);
}

void agent_logs_close_all(agent_t *a)
{
    while (a->streams != NULL)
        stream_finish(a->streams);
}
