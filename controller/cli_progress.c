/*
 * Live progress on a terminal for the commands that wait (cli_progress.h).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli_progress.h"
#include "core/mem.h"
#include "core/util.h"

#define REDRAW_US 200000
#define POLL_US   1000000

static const char *const SPIN[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

bool ctl_progress_is_tty(FILE *f)
{
    const char *term = getenv("TERM");

    return isatty(fileno(f)) && !(term && strcmp(term, "dumb") == 0);
}

void ctl_progress_line(char *out, size_t n, unsigned frame, const char *text, double elapsed,
                       int width)
{
    char tail[32];
    int room;

    snprintf(tail, sizeof(tail), " (%.0f s)", elapsed < 0 ? 0 : elapsed);
    /* The spinner is one column and a space; keep one column spare so the
     * terminal never wraps. */
    room = width - 3 - (int)strlen(tail);
    if (room < 0)
        room = 0;
    snprintf(out, n, "%s %.*s%s", SPIN[frame % (sizeof(SPIN) / sizeof(SPIN[0]))], room, text, tail);
}

static int columns(FILE *f)
{
    struct winsize ws;

    return ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col : 80;
}

static void draw(ctl_progress_t *p)
{
    char line[512];

    if (!p->text[0])
        return; /* nothing to say yet */
    ctl_progress_line(line, sizeof(line), p->frame++, p->text, core_now() - p->start,
                      columns(p->f));
    fprintf(p->f, "\r\033[K%s", line);
    fflush(p->f);
}

static void *ticker(void *arg)
{
    ctl_progress_t *p = arg;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        draw(p);
        pthread_mutex_unlock(&p->mu);
        usleep(REDRAW_US);
    }
}

void ctl_progress_begin(ctl_progress_t *p, FILE *f)
{
    memset(p, 0, sizeof(*p));
    p->f = f;
    p->start = core_now();
    if (!ctl_progress_is_tty(f))
        return;
    pthread_mutex_init(&p->mu, NULL);
    p->live = pthread_create(&p->thread, NULL, ticker, p) == 0;
    if (!p->live)
        pthread_mutex_destroy(&p->mu);
}

void ctl_progress_set(ctl_progress_t *p, const char *fmt, ...)
{
    va_list ap;

    if (!p->live)
        return;
    pthread_mutex_lock(&p->mu);
    va_start(ap, fmt);
    vsnprintf(p->text, sizeof(p->text), fmt, ap);
    va_end(ap);
    draw(p);
    pthread_mutex_unlock(&p->mu);
}

void ctl_progress_end(ctl_progress_t *p)
{
    if (!p->live)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    fprintf(p->f, "\r\033[K");
    fflush(p->f);
    p->live = false;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : "";
}

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? v->valueint : 0;
}

void ctl_progress_service_text(const cJSON *svc, char *out, size_t n, int *state)
{
    static const char *const order[] = {"PENDING", "PROVISIONING", "STARTING", "NOT_READY",
                                        "READY"};
    int count[5] = {0}, ready, target = num(svc, "target_num_replicas");
    const char *status = str(svc, "status"), *phase = "provisioning";
    const cJSON *r;
    size_t o;

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(svc, "replicas"))
    {
        for (int i = 0; i < 5; i++)
            count[i] += strcmp(str(r, "status"), order[i]) == 0;
    }
    ready = count[4];
    if (count[0] + count[1] == 0 && count[2] + count[3] > 0)
        phase = "starting";
    else if (count[0] + count[1] + count[2] + count[3] == 0 && ready > 0)
        phase = "ready";
    *state = 0;
    if (strcmp(status, "READY") == 0 && ready >= target && ready > 0)
        *state = 1;
    else if (target == 0 && *status && strcmp(status, "CONTROLLER_INIT") != 0)
        *state = 1; /* scaled to zero: nothing to wait for */
    else if (strncmp(status, "FAILED", 6) == 0 || strcmp(status, "CONTROLLER_FAILED") == 0)
        *state = -1;
    o = (size_t)snprintf(out, n, "%s: %s, %d/%d replicas ready", str(svc, "name"),
                         *state == 1 ? "ready" : phase, ready, target);
    for (int i = 0, first = 1; i < 4 && o < n; i++) {
        if (!count[i])
            continue;
        o += (size_t)snprintf(out + o, n - o, "%s%d %s", first ? " (" : ", ", count[i], order[i]);
        first = 0;
    }
    if (o < n && (count[0] + count[1] + count[2] + count[3]))
        snprintf(out + o, n - o, ")");
}

int ctl_progress_wait_service(const ctl_cli_daemon_t *d, const char *name)
{
    ctl_progress_t p;
    char *esc, *path, text[256] = "", *err = NULL;
    int state = 0, rc = 0;

    if (!ctl_progress_is_tty(stdout))
        return 0;
    printf("Waiting for the replicas to be ready (Ctrl+C stops waiting; the service keeps "
           "starting).\n");
    esc = ctl_url_escape(name);
    path = core_xasprintf("/api/services?names=%s", esc);
    free(esc);
    ctl_progress_begin(&p, stdout);
    for (;;) {
        cJSON *doc = NULL, *svc;

        if (ctl_cli_api(d, "GET", path, NULL, 30000, NULL, &doc, &err) < 0)
            break; /* the controller went away: sky serve status tells */
        svc = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "services"), 0);
        if (!svc) {
            cJSON_Delete(doc);
            break;
        }
        ctl_progress_service_text(svc, text, sizeof(text), &state);
        cJSON_Delete(doc);
        if (state != 0)
            break;
        ctl_progress_set(&p, "%s", text);
        usleep(POLL_US);
    }
    ctl_progress_end(&p);
    if (err) {
        fprintf(stderr, "sky serve: %s\n", err);
        free(err);
    } else if (state < 0) {
        fprintf(stderr,
                "sky serve: %s: the service failed (see `sky serve logs %s "
                "--controller`)\n",
                text, name);
        rc = 1;
    } else if (state > 0) {
        printf("%s (%.0f s).\n", text, core_now() - p.start);
    }
    free(path);
    return rc;
}

void ctl_progress_wait_job(const ctl_cli_daemon_t *d, long id)
{
    ctl_progress_t p;
    char path[64];

    if (!ctl_progress_is_tty(stdout))
        return;
    snprintf(path, sizeof(path), "/api/jobs/%ld", id);
    ctl_progress_begin(&p, stdout);
    for (;;) {
        cJSON *job = NULL;
        const char *st;
        bool waiting;

        if (ctl_cli_api(d, "GET", path, NULL, 30000, NULL, &job, NULL) < 0)
            break;
        st = str(job, "status");
        waiting = strcmp(st, "PENDING") == 0 || strcmp(st, "SUBMITTED") == 0 ||
                  strcmp(st, "STARTING") == 0 || strcmp(st, "RECOVERING") == 0;
        if (waiting)
            ctl_progress_set(&p, "Job %ld (%s): %s%s", id, str(job, "name"),
                             strcmp(st, "STARTING") == 0 ? "starting" : "provisioning",
                             strcmp(st, "RECOVERING") == 0 ? " (recovering)" : "");
        cJSON_Delete(job);
        if (!waiting)
            break;
        usleep(POLL_US / 2);
    }
    ctl_progress_end(&p);
}
