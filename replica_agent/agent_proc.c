#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

/*
 * Task execution. One task is active at a time; the others wait PENDING in
 * id order. A task goes through up to three phases, each one process group
 * started with uv_spawn(UV_PROCESS_DETACHED) (setsid, so pgid == pid):
 *   SYNC   workdir -> <home>/sky_workdir and COPY file_mounts (cp -a), in one bash
 *   SETUP  <task dir>/setup.sh >> setup.log, after ~/.bashrc (TASK_SHELL)
 *   RUN    <task dir>/run.sh   >> run.log, after ~/.bashrc
 * MOUNT file_mounts are bind mounts done by the agent itself before SYNC.
 *
 * When a phase's leader exits, whatever it left running in its group gets
 * SIGTERM (the reference kills a job's process tree when the job ends).
 * Cancel sends SIGTERM to the group, waits for the group to empty or for
 * the grace period, then SIGKILLs it; only then is the task CANCELLED, so
 * a CANCELLED task has no processes left.
 */

struct agent_proc {
    uv_process_t proc;
    uv_timer_t timer;
    agent_t *a;
    agent_task_t *t; /* NULL once detached (agent shutdown) */
    pid_t pgid;
    int open_handles;
    int exited;
    int killing;
    int sigkilled;
    int64_t exit_status;
    int term_signal;
    unsigned long long deadline_ms;
    unsigned long long sigkill_ms;
};

static void note(agent_t *a, agent_task_t *t, const char *log, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends a line from the agent itself to a task log, so users see why in `logs`. */
static void note(agent_t *a, agent_task_t *t, const char *log, const char *fmt, ...)
{
    char *path = agent_task_file(a, t->id, log);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n > 0) {
        if ((size_t)n > sizeof(line) - 2)
            n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        ssize_t w = write(fd, line, (size_t)n);
        (void)w;
    }
    close(fd);
}

void agent_set_status(agent_t *a, agent_task_t *t, core_agent_status_t st)
{
    if (!agent_status_transition_ok(t->status, st)) {
        /* A bug, not an input error: keep the state we have and say so. */
        CORE_ERROR("task %d: illegal transition %s -> %s ignored", t->id,
                   core_agent_status_name(t->status), core_agent_status_name(st));
        return;
    }
    CORE_INFO("task %d: %s -> %s", t->id, core_agent_status_name(t->status),
              core_agent_status_name(st));
    t->status = st;
    agent_store_save_status(a, t);
}

static void on_kick(uv_timer_t *h)
{
    agent_schedule(h->data);
}

static void kick(agent_t *a)
{
    if (!a->stopping)
        uv_timer_start(&a->kick, on_kick, 0, 0);
}

static void finish(agent_t *a, agent_task_t *t, core_agent_status_t st, int has_code, int code,
                   char *reason)
{
    t->has_exit_code = has_code;
    t->exit_code = has_code ? code : 0;
    free(t->failure_reason);
    t->failure_reason = reason;
    t->ended_at = core_now();
    t->phase = AGENT_PHASE_NONE;
    t->cancel_requested = 0;
    if (reason != NULL)
        CORE_INFO("task %d: %s", t->id, reason);
    agent_set_status(a, t, st);
    if (a->active == t)
        a->active = NULL;
    kick(a);
}

static void on_proc_closed(uv_handle_t *h)
{
    agent_proc_t *pr = h->data;
    if (--pr->open_handles == 0)
        free(pr);
}

static void proc_release(agent_proc_t *pr)
{
    uv_timer_stop(&pr->timer);
    uv_close((uv_handle_t *)&pr->timer, on_proc_closed);
    uv_close((uv_handle_t *)&pr->proc, on_proc_closed);
}

/*
 * Does the process group still have a member that is not a zombie? Orphans
 * of a task are reparented to init, and an init that does not reap (some
 * container runtimes) would otherwise make a killed group look alive.
 */
static int group_alive(pid_t pgid)
{
    if (kill(-pgid, 0) < 0 && errno != EPERM)
        return 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 1;
    int alive = 0;
    struct dirent *de;
    while (!alive && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%.255s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (p != NULL && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            alive = 1;
    }
    closedir(d);
    return alive;
}

static void start_setup(agent_t *a, agent_task_t *t);
static void start_run(agent_t *a, agent_task_t *t);

static char *describe_exit(const char *what, int64_t status, int sig)
{
    if (sig)
        return core_xasprintf("%s was killed by signal %d (%s)", what, sig, strsignal(sig));
    return core_xasprintf("%s exited with code %d", what, (int)status);
}

/* The phase's process group is done (exited, and drained if cancelled). */
static void phase_done(agent_proc_t *pr)
{
    agent_t *a = pr->a;
    agent_task_t *t = pr->t;
    int64_t status = pr->exit_status;
    int sig = pr->term_signal;
    int code = sig ? 128 + sig : (int)status;
    proc_release(pr);
    if (t == NULL)
        return;
    t->proc = NULL;
    if (t->cancel_requested) {
        note(a, t, t->phase == AGENT_PHASE_RUN ? "run.log" : "setup.log",
             "sky-agent: task cancelled");
        finish(a, t, CORE_AGENT_CANCELLED, 0, 0, core_xstrdup("cancelled by request"));
        return;
    }
    switch (t->phase) {
    case AGENT_PHASE_SYNC:
        if (code != 0) {
            finish(a, t, CORE_AGENT_FAILED_SETUP, 0, 0,
                   describe_exit("syncing workdir/file_mounts", status, sig));
            return;
        }
        start_setup(a, t);
        return;
    case AGENT_PHASE_SETUP:
        if (code != 0) {
            finish(a, t, CORE_AGENT_FAILED_SETUP, 1, code, describe_exit("setup", status, sig));
            return;
        }
        start_run(a, t);
        return;
    case AGENT_PHASE_RUN:
        if (code != 0)
            finish(a, t, CORE_AGENT_FAILED, 1, code, describe_exit("run", status, sig));
        else
            finish(a, t, CORE_AGENT_SUCCEEDED, 1, 0, NULL);
        return;
    default:
        CORE_ERROR("task %d: process exit in phase %d", t->id, (int)t->phase);
        return;
    }
}

static void on_kill_tick(uv_timer_t *h)
{
    agent_proc_t *pr = h->data;
    unsigned long long now = core_mono_ms();
    if (!pr->sigkilled && (now >= pr->deadline_ms || (pr->exited && !group_alive(pr->pgid)))) {
        if (group_alive(pr->pgid))
            CORE_INFO("process group %d: grace period over, SIGKILL", (int)pr->pgid);
        kill(-pr->pgid, SIGKILL);
        pr->sigkilled = 1;
        pr->sigkill_ms = now;
    }
    /* After SIGKILL the members die at once; a short wait lets them be reaped. */
    if (pr->exited && (!group_alive(pr->pgid) || (pr->sigkilled && now >= pr->sigkill_ms + 500)))
        phase_done(pr);
}

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    agent_proc_t *pr = p->data;
    pr->exited = 1;
    pr->exit_status = exit_status;
    pr->term_signal = term_signal;
    if (pr->killing)
        return; /* on_kill_tick finishes once the group is gone */
    if (group_alive(pr->pgid))
        kill(-pr->pgid, SIGTERM);
    phase_done(pr);
}

/*
 * Spawns one phase as a new session/process group with stdout and stderr
 * appended to <log>. Returns 0 or a negative errno (then no process runs).
 */
static int spawn_phase(agent_t *a, agent_task_t *t, agent_phase_t phase, char **args,
                       const char *cwd, const char *log)
{
    char *path = agent_task_file(a, t->id, log);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int err = errno;
    free(path);
    if (fd < 0)
        return -err;
    /* The sync is the agent's own step: the task's envs (PATH...) must not change it. */
    char **env = agent_env_build(a->base_env, a->home, a->node_ip, phase != AGENT_PHASE_RUN,
                                 phase == AGENT_PHASE_SYNC ? NULL : &t->spec);
    agent_proc_t *pr = core_xcalloc(1, sizeof(*pr));
    pr->a = a;
    pr->t = t;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
    };
    uv_process_options_t opts = {
        .exit_cb = on_exit_cb,
        .file = args[0],
        .args = args,
        .env = env,
        .cwd = cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(a->loop, &pr->proc, &opts);
    close(fd);
    agent_env_free(env);
    if (rc < 0) {
        /* uv_spawn leaves the handle initialized even on failure. */
        pr->t = NULL;
        pr->open_handles = 1;
        pr->proc.data = pr;
        uv_close((uv_handle_t *)&pr->proc, on_proc_closed);
        return rc;
    }
    pr->proc.data = pr;
    uv_timer_init(a->loop, &pr->timer);
    pr->timer.data = pr;
    pr->open_handles = 2;
    pr->pgid = pr->proc.pid;
    t->proc = pr;
    t->phase = phase;
    t->pgid = pr->pgid;
    t->pid_start = agent_proc_starttime(pr->pgid);
    agent_store_save_status(a, t);
    CORE_DEBUG("task %d: phase %d pid %d", t->id, (int)phase, (int)pr->pgid);
    return 0;
}

static char *task_cwd(agent_t *a, agent_task_t *t)
{
    if (t->spec.workdir != NULL)
        return core_xasprintf("%s/sky_workdir", a->home);
    return core_xstrdup(a->home);
}

static int mkdir_parent(const char *path)
{
    char *dup = core_xstrdup(path);
    int rc = core_mkdir_p(dirname(dup), 0755);
    free(dup);
    return rc;
}

/*
 * MOUNT: a bind mount in the agent's private mount namespace when root;
 * otherwise a symlink at <dst> (replacing an empty directory or an old
 * symlink), which gives the task the same view of the files.
 */
static char *do_mount(agent_t *a, const core_agent_mount_t *m)
{
    struct stat st, ds;
    if (stat(m->src, &st) < 0)
        return core_xasprintf("file_mounts: MOUNT source %s: %s", m->src, strerror(errno));
    if (a->can_mount) {
        int rc = S_ISDIR(st.st_mode) ? core_mkdir_p(m->dst, 0755) : mkdir_parent(m->dst);
        if (rc < 0)
            return core_xasprintf("file_mounts: cannot create %s: %s", m->dst, core_strerror(rc));
        if (!S_ISDIR(st.st_mode)) {
            int fd = open(m->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0)
                close(fd);
        }
        if (mount(m->src, m->dst, NULL, MS_BIND | MS_REC, NULL) < 0)
            return core_xasprintf("file_mounts: bind mount of %s on %s failed: %s", m->src, m->dst,
                                  strerror(errno));
        CORE_INFO("bind-mounted %s on %s", m->src, m->dst);
        return NULL;
    }
    if (lstat(m->dst, &ds) == 0) {
        if (S_ISLNK(ds.st_mode)) {
            char buf[CORE_AGENT_MAX_PATH];
            ssize_t n = readlink(m->dst, buf, sizeof(buf) - 1);
            if (n >= 0) {
                buf[n] = '\0';
                if (strcmp(buf, m->src) == 0)
                    return NULL;
            }
            if (unlink(m->dst) < 0)
                goto cannot;
        } else if (!S_ISDIR(ds.st_mode) || rmdir(m->dst) < 0) {
            errno = EEXIST;
            goto cannot;
        }
    }
    if (mkdir_parent(m->dst) < 0 || symlink(m->src, m->dst) < 0)
        goto cannot;
    CORE_INFO("not root: MOUNT %s -> %s is a symlink", m->dst, m->src);
    return NULL;
cannot:
    return core_xasprintf("file_mounts: MOUNT of %s at %s needs root for a bind mount, and a "
                          "symlink cannot be put there instead: %s",
                          m->src, m->dst, strerror(errno));
}

/* One bash for all copies; paths travel as positional parameters, never quoted into the script. */
static const char SYNC_SCRIPT_HEAD[] =
    "set -e\n"
    "sync_one() {\n"
    "  if [ -d \"$1\" ]; then mkdir -p \"$2\" && cp -a \"$1\"/. \"$2\"/\n"
    "  else mkdir -p \"$(dirname \"$2\")\" && cp -a \"$1\" \"$2\"; fi\n"
    "}\n";

static void start_sync(agent_t *a, agent_task_t *t)
{
    size_t n = 0;
    char **args = core_xcalloc(4 + 2 * (t->spec.n_mounts + 1) + 1, sizeof(char *));
    size_t cap = sizeof(SYNC_SCRIPT_HEAD) + 64 * (t->spec.n_mounts + 1);
    char *script = core_xmalloc(cap);
    size_t len = (size_t)snprintf(script, cap, "%s", SYNC_SCRIPT_HEAD);
    int argi = 1;
    args[n++] = a->bash;
    args[n++] = "-c";
    args[n++] = script;
    args[n++] = "sky-sync";
    char *wd_dst = NULL;
    if (t->spec.workdir != NULL) {
        wd_dst = core_xasprintf("%s/sky_workdir", a->home);
        args[n++] = t->spec.workdir;
        args[n++] = wd_dst;
        len += (size_t)snprintf(script + len, cap - len, "sync_one \"${%d}\" \"${%d}\"\n", argi,
                                argi + 1);
        argi += 2;
    }
    for (size_t i = 0; i < t->spec.n_mounts; i++) {
        if (t->spec.mounts[i].mode != CORE_AGENT_COPY)
            continue;
        args[n++] = t->spec.mounts[i].src;
        args[n++] = t->spec.mounts[i].dst;
        len += (size_t)snprintf(script + len, cap - len, "sync_one \"${%d}\" \"${%d}\"\n", argi,
                                argi + 1);
        argi += 2;
    }
    args[n] = NULL;
    int rc = spawn_phase(a, t, AGENT_PHASE_SYNC, args, a->home, "setup.log");
    free(script);
    free(wd_dst);
    free(args);
    if (rc < 0)
        finish(a, t, CORE_AGENT_FAILED_SETUP, 0, 0,
               core_xasprintf("cannot start the workdir/file_mounts sync: %s", core_strerror(rc)));
}

/*
 * setup and run begin as SkyPilot's task scripts do (make_task_bash_script:
 * `source ~/.bashrc` first), so that what setup appends to ~/.bashrc, such
 * as the seed's `echo export WANDB_API_KEY=... >> ~/.bashrc`, reaches run.
 * The script is sourced from a `bash -c` so that its line numbers stay its
 * own; $0 is its path.
 */
static const char TASK_SHELL[] = "if [ -f ~/.bashrc ]; then . ~/.bashrc; fi\n"
                                 ". \"$0\"\n";

static void start_script(agent_t *a, agent_task_t *t, agent_phase_t phase)
{
    const char *what = phase == AGENT_PHASE_SETUP ? "setup" : "run";
    char *script = agent_task_file(a, t->id, phase == AGENT_PHASE_SETUP ? "setup.sh" : "run.sh");
    char *cwd = task_cwd(a, t);
    char *args[] = {a->bash, "-c", (char *)TASK_SHELL, script, NULL};
    int rc =
        spawn_phase(a, t, phase, args, cwd, phase == AGENT_PHASE_SETUP ? "setup.log" : "run.log");
    free(script);
    free(cwd);
    if (rc < 0) {
        char *reason = core_xasprintf("cannot start %s: %s", what, core_strerror(rc));
        note(a, t, phase == AGENT_PHASE_SETUP ? "setup.log" : "run.log", "sky-agent: %s", reason);
        finish(a, t, phase == AGENT_PHASE_SETUP ? CORE_AGENT_FAILED_SETUP : CORE_AGENT_FAILED, 0, 0,
               reason);
    }
}

static void start_setup(agent_t *a, agent_task_t *t)
{
    if (t->spec.setup == NULL) {
        start_run(a, t);
        return;
    }
    start_script(a, t, AGENT_PHASE_SETUP);
}

static void start_run(agent_t *a, agent_task_t *t)
{
    agent_set_status(a, t, CORE_AGENT_RUNNING);
    if (t->spec.run == NULL) {
        finish(a, t, CORE_AGENT_SUCCEEDED, 1, 0, NULL);
        return;
    }
    start_script(a, t, AGENT_PHASE_RUN);
}

static void start_task(agent_t *a, agent_task_t *t)
{
    a->active = t;
    t->started_at = core_now();
    agent_set_status(a, t, CORE_AGENT_SETTING_UP);
    int need_sync = t->spec.workdir != NULL;
    if (t->spec.workdir != NULL) {
        struct stat st;
        if (stat(t->spec.workdir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            char *reason =
                core_xasprintf("workdir %s is not a directory on this host", t->spec.workdir);
            note(a, t, "setup.log", "sky-agent: %s", reason);
            finish(a, t, CORE_AGENT_FAILED_SETUP, 0, 0, reason);
            return;
        }
    }
    for (size_t i = 0; i < t->spec.n_mounts; i++) {
        const core_agent_mount_t *m = &t->spec.mounts[i];
        if (m->mode == CORE_AGENT_COPY) {
            struct stat st;
            if (stat(m->src, &st) < 0) {
                char *reason =
                    core_xasprintf("file_mounts: COPY source %s: %s", m->src, strerror(errno));
                note(a, t, "setup.log", "sky-agent: %s", reason);
                finish(a, t, CORE_AGENT_FAILED_SETUP, 0, 0, reason);
                return;
            }
            need_sync = 1;
            continue;
        }
        char *reason = do_mount(a, m);
        if (reason != NULL) {
            note(a, t, "setup.log", "sky-agent: %s", reason);
            finish(a, t, CORE_AGENT_FAILED_SETUP, 0, 0, reason);
            return;
        }
    }
    if (need_sync)
        start_sync(a, t);
    else
        start_setup(a, t);
}

void agent_schedule(agent_t *a)
{
    if (a->active != NULL || a->stopping)
        return;
    for (int i = 0; i < a->n_tasks; i++) {
        agent_task_t *t = a->tasks[i];
        if (t != NULL && t->status == CORE_AGENT_PENDING) {
            start_task(a, t);
            return;
        }
    }
}

agent_task_t *agent_task_find(const agent_t *a, int id)
{
    if (id < 1 || id > a->n_tasks)
        return NULL;
    return a->tasks[id - 1];
}

static int write_script(agent_t *a, int id, const char *name, const char *body)
{
    char *path = agent_task_file(a, id, name);
    int rc = core_write_file(path, body, strlen(body), 0700);
    free(path);
    return rc;
}

int agent_task_submit(agent_t *a, core_agent_req_t *spec, int *id)
{
    agent_task_t *t = core_xcalloc(1, sizeof(*t));
    t->id = a->n_tasks + 1;
    t->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    t->status = CORE_AGENT_PENDING;
    t->submitted_at = core_now();
    char *dir = agent_task_dir(a, t->id);
    int rc = core_mkdir_p(dir, 0700);
    if (rc == 0 && t->spec.setup != NULL)
        rc = write_script(a, t->id, "setup.sh", t->spec.setup);
    if (rc == 0 && t->spec.run != NULL)
        rc = write_script(a, t->id, "run.sh", t->spec.run);
    /* The row is the submission: written last, once everything it needs is there. */
    if (rc == 0)
        rc = agent_store_add(a, t);
    if (rc < 0)
        core_rm_rf(dir);
    free(dir);
    if (rc < 0) {
        agent_task_free(t);
        return rc;
    }
    a->tasks = core_xrealloc(a->tasks, (size_t)(a->n_tasks + 1) * sizeof(*a->tasks));
    a->tasks[a->n_tasks++] = t;
    *id = t->id;
    CORE_INFO("task %d (%s) submitted", t->id, t->spec.name);
    kick(a);
    return 0;
}

int agent_task_cancel(agent_t *a, agent_task_t *t, long grace_ms, int *cancelled)
{
    *cancelled = 0;
    if (core_agent_status_is_terminal(t->status))
        return 0;
    *cancelled = 1;
    if (t->status == CORE_AGENT_PENDING) {
        t->ended_at = core_now();
        free(t->failure_reason);
        t->failure_reason = core_xstrdup("cancelled by request before it started");
        agent_set_status(a, t, CORE_AGENT_CANCELLED);
        return 0;
    }
    if (t->cancel_requested)
        return 0;
    t->cancel_requested = 1;
    agent_proc_t *pr = t->proc;
    if (pr == NULL) {
        /* Live but between phases cannot happen (phases chain synchronously); be safe. */
        finish(a, t, CORE_AGENT_CANCELLED, 0, 0, core_xstrdup("cancelled by request"));
        return 0;
    }
    if (grace_ms < 0)
        grace_ms = a->kill_grace_ms;
    CORE_INFO("task %d: cancelling, SIGTERM to process group %d (SIGKILL in %ld ms)", t->id,
              (int)pr->pgid, grace_ms);
    pr->killing = 1;
    pr->deadline_ms = core_mono_ms() + (unsigned long long)grace_ms;
    kill(-pr->pgid, SIGTERM);
    uv_timer_start(&pr->timer, on_kill_tick, 50, 100);
    return 0;
}

void agent_mountns_init(agent_t *a)
{
    a->can_mount = 0;
    if (geteuid() != 0) {
        CORE_INFO("not root: MOUNT file_mounts will be symlinks");
        return;
    }
    /*
     * A private mount namespace of our own, so bind mounts stay inside this
     * instance (ip netns exec gives us one already; without it, this keeps
     * them off the host's namespace). Must happen before libuv starts threads.
     */
    if (unshare(CLONE_NEWNS) < 0) {
        CORE_WARN("unshare(CLONE_NEWNS): %s; MOUNT file_mounts will be symlinks", strerror(errno));
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        CORE_WARN("making / private: %s; MOUNT file_mounts will be symlinks", strerror(errno));
        return;
    }
    a->can_mount = 1;
}

static char *find_bash(void)
{
    const char *path = getenv("PATH");
    char *dup = core_xstrdup(path != NULL && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL, *found = NULL;
    for (char *dir = strtok_r(dup, ":", &save); dir != NULL && found == NULL;
         dir = strtok_r(NULL, ":", &save)) {
        char *cand = core_xasprintf("%s/bash", *dir ? dir : ".");
        if (cand[0] == '/' && access(cand, X_OK) == 0)
            found = cand;
        else
            free(cand);
    }
    free(dup);
    return found != NULL ? found : core_xstrdup("/bin/bash");
}

int agent_init(agent_t *a, uv_loop_t *loop, const char *home, const char *node_ip)
{
    extern char **environ;
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->home = core_xstrdup(home);
    a->state_dir = core_xasprintf("%s/.sky_agent/tasks", home);
    a->node_ip = core_xstrdup(node_ip);
    a->base_env = environ;
    a->bash = find_bash();
    a->kill_grace_ms = AGENT_KILL_GRACE_MS;
    uv_timer_init(loop, &a->kick);
    a->kick.data = a;
    int rc = agent_store_init(a);
    if (rc < 0)
        return rc;
    return agent_store_load(a);
}

/* Leaves task processes running (they die with the instance); closes our handles. */
void agent_close(agent_t *a)
{
    a->stopping = 1;
    agent_logs_close_all(a);
    uv_timer_stop(&a->kick);
    uv_close((uv_handle_t *)&a->kick, NULL);
    if (a->active != NULL && a->active->proc != NULL) {
        agent_proc_t *pr = a->active->proc;
        pr->t = NULL;
        a->active->proc = NULL;
        proc_release(pr);
    }
}

void agent_free(agent_t *a)
{
    for (int i = 0; i < a->n_tasks; i++)
        agent_task_free(a->tasks[i]);
    free(a->tasks);
    agent_store_close(a);
    free(a->home);
    free(a->state_dir);
    free(a->node_ip);
    free(a->bash);
    memset(a, 0, sizeof(*a));
}
