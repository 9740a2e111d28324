/* consumer: the notification gateway daemon. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "gateway.h"
#include "log.h"

static gateway_t *running;

static void on_signal(int sig)
{
    if (!running)
        return;
    if (sig == SIGHUP)
        gateway_request_reload(running);
    else
        gateway_request_stop(running);
}

/* libmongoc keeps performance counters in /dev/shm/mongoc-PID from its
 * load-time constructor: a killed process leaves the file behind, and where
 * /dev/shm cannot take it, it prints "Falling back to malloc" before any log
 * handler exists (so outside the log format). Only mongoc's own tools read
 * them. MONGOC_DISABLE_SHM turns them off but is read by that constructor,
 * and setenv cannot reach it: libc installs the environment after this runs.
 * So before any library is initialized (ELF preinit_array), the process
 * starts itself again with the variable added. */
#define MONGOC_SHM_OFF "MONGOC_DISABLE_SHM=1"
static void mongoc_without_shm(int argc, char **argv, char **envp)
{
    static char *env[4096];
    size_t n = 0;

    (void)argc;
    for (; envp[n]; n++)
        if (strncmp(envp[n], "MONGOC_DISABLE_SHM=", 19) == 0)
            return;
    if (n + 2 > sizeof(env) / sizeof(env[0]))
        return; /* an environment this large keeps the counters */
    memcpy(env, envp, n * sizeof(env[0]));
    env[n] = (char *)MONGOC_SHM_OFF;
    env[n + 1] = NULL;
    execve("/proc/self/exe", argv, env);
    /* No /proc: go on with the counters. */
}
__attribute__((section(".preinit_array"), used))
static void (*const run_mongoc_without_shm)(int, char **, char **) = mongoc_without_shm;

int main(int argc, char **argv)
{
    struct config conf;
    char err[512];

    /* A bad setting is reported in the log format asked for, which
     * config_load may not have reached: look for it first. */
    const char *format = getenv("LOG_FORMAT");
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--log-format=", 13) == 0)
            format = argv[i] + 13;
        else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc)
            format = argv[i + 1];
    }
    int json = format && strcmp(format, "json") == 0;
    if (json)
        log_set_format("json");
    switch (config_load(&conf, argc, argv, err, sizeof(err))) {
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_ERROR:
        if (json)
            log_error("%s", err);
        else
            fprintf(stderr, "consumer: %s\n", err);
        return 2;
    case CONFIG_OK:
        break;
    }
    config_log(&conf);

    /* A client that vanishes mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    /* SIGINT, SIGTERM and SIGHUP go to this thread only: the threads started
     * in gateway_new inherit them blocked, so a signal always interrupts the
     * event loop's wait, which then sees the flag. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stops, NULL);
    gateway_t *g = gateway_new(&conf, err, sizeof(err));
    if (!g) {
        log_error("cannot start: %s", err);
        config_free(&conf);
        return 1;
    }
    running = g;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, &stops, NULL);

    int rc = gateway_run(g);
    running = NULL;
    gateway_free(g);
    config_free(&conf);
    return rc == 0 ? 0 : 1;
}
