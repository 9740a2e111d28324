/* consumer: the notification gateway daemon. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    struct config conf;
    char err[512];

    switch (config_load(&conf, argc, argv, err, sizeof(err))) {
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_ERROR:
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
