/* main.c - command line, signals and the event loop.
 *
 *   hopper -c FILE     run in the foreground with FILE
 *   hopper --enable-rabbit -c FILE
 *                      the same with the RabbitMQ side on (task queues),
 *                      whatever rabbit.enabled says
 *   hopper -t -c FILE  check FILE and exit
 *   hopper -V          print the version
 *   hopper -h          print usage
 *
 * Exit codes: 0 clean exit (also after a SIGTERM drain) or valid config;
 * 1 invalid config or startup failure (cannot listen, bad Kafka property,
 * no signal events); 2 usage error; 3 second signal during the drain (exit
 * at once).
 *
 * SIGTERM/SIGINT drain and exit; SIGHUP is logged and ignored until config
 * reload exists. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "bridge.h"
#include "config.h"
#include "contract.h"
#include "log.h"
#include "server.h"
#include "sink.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_FORCED = 3 };

/* How often the drain checks whether everything in flight has settled. */
#define DRAIN_POLL_MS 20
/* After the drain, how long clients get to answer connection.close. */
#define CLOSE_GRACE_MS 2000

struct app {
    struct event_base *base;
    struct server *srv;
    struct event *drain_timer;
    /* Signal events; ev_usr2 only with HOPPER_TEST_HOOKS=1. */
    struct event *ev_term, *ev_int, *ev_hup, *ev_usr2;
    uint64_t drain_deadline_ms; /* monotonic_ms() */
    int signals;
    int exit_code;
    bool closing; /* drain finished, waiting for clients to go */
    uint64_t close_deadline_ms;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: hopper -c FILE [--enable-rabbit] [-t] [-v]\n"
                 "       hopper -V | -h\n"
                 "\n"
                 "  -c FILE          configuration file (YAML)\n"
                 "  --enable-rabbit  turn on task queues (consuming) and the bridge\n"
                 "                   (rabbit.upstream), as rabbit.enabled\n"
                 "  -t               check the configuration and exit (0 valid, 1 invalid)\n"
                 "  -v               verbose (debug) logging\n"
                 "  -V               print version and exit\n"
                 "  -h               print this help and exit\n"
                 "\n"
                 "Exit codes: 0 ok, 1 bad config or startup failure, 2 usage, 3 forced exit.\n");
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    struct server *srv = app->srv;
    if (!app->closing) {
        if (server_busy(srv) && monotonic_ms() < app->drain_deadline_ms)
            return;
        server_finish_drain(srv);
        app->closing = true;
        app->close_deadline_ms = monotonic_ms() + CLOSE_GRACE_MS;
    }
    if ((srv->n_conns == 0 && !bridges_closing(srv->bridges)) ||
        monotonic_ms() >= app->close_deadline_ms) {
        log_info("shutdown complete: %llu published, %llu acks, %llu nacks sent",
                 (unsigned long long)srv->stats.published, (unsigned long long)srv->stats.acks_sent,
                 (unsigned long long)srv->stats.nacks_sent);
        if (srv->contracts)
            log_info("contracts: %llu refused (%llu of them dead-lettered), %llu nacked without "
                     "a schema",
                     (unsigned long long)srv->stats.contract_refused,
                     (unsigned long long)srv->stats.contract_dead_lettered,
                     (unsigned long long)srv->stats.contract_unavailable);
        event_base_loopexit(app->base, NULL);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    if (++app->signals > 1) {
        log_warn("second signal: exiting at once");
        app->exit_code = EXIT_FORCED;
        event_base_loopbreak(app->base);
        return;
    }
    log_info("%s: draining for up to %u ms (send again to exit at once)", strsignal((int)sig),
             app->srv->cfg->drain_timeout_ms);
    server_begin_drain(app->srv);
    app->drain_deadline_ms = monotonic_ms() + app->srv->cfg->drain_timeout_ms;
    struct timeval tick = {0, DRAIN_POLL_MS * 1000};
    if (event_add(app->drain_timer, &tick) == -1) {
        /* Nothing else would end the drain: end it now. */
        log_error("cannot arm the drain timer: nacking what is in flight and exiting");
        server_finish_drain(app->srv);
        event_base_loopexit(app->base, NULL);
    }
}

/* SIGHUP would kill hopper (its default action) where an operator expects a
 * reload; until reload exists it is logged and changes nothing. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    log_warn("SIGHUP: configuration reload is not supported yet; going on with the current "
             "configuration");
}

/* Test hook, enabled only by HOPPER_TEST_HOOKS=1: SIGUSR2 raises a fatal
 * producer error, so tests can prove the rebuild path. */
static void on_usr2(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    log_warn("SIGUSR2: injecting a fatal producer error (test hook)");
    sink_inject_fatal(app->srv->sink, "injected by SIGUSR2 (HOPPER_TEST_HOOKS)");
}

/* Makes and adds the signal events and the drain timer: -1 if libevent
 * cannot. free_events() frees whatever was made either way. */
static int add_events(struct app *app, bool test_hooks)
{
    app->ev_term = evsignal_new(app->base, SIGTERM, on_signal, app);
    app->ev_int = evsignal_new(app->base, SIGINT, on_signal, app);
    app->ev_hup = evsignal_new(app->base, SIGHUP, on_hup, app);
    if (test_hooks)
        app->ev_usr2 = evsignal_new(app->base, SIGUSR2, on_usr2, app);
    app->drain_timer = event_new(app->base, -1, EV_PERSIST, on_drain_tick, app);
    if (!app->ev_term || !app->ev_int || !app->ev_hup || (test_hooks && !app->ev_usr2) ||
        !app->drain_timer)
        return -1;
    if (event_add(app->ev_term, NULL) || event_add(app->ev_int, NULL) ||
        event_add(app->ev_hup, NULL) || (app->ev_usr2 && event_add(app->ev_usr2, NULL)))
        return -1;
    return 0;
}

static void free_events(struct app *app)
{
    struct event *evs[] = {app->ev_term, app->ev_int, app->ev_hup, app->ev_usr2, app->drain_timer};
    for (size_t i = 0; i < ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool test_only = false, enable_rabbit = false;
    enum { OPT_ENABLE_RABBIT = 256 };
    static const struct option longopts[] = {
        {"enable-rabbit", no_argument, NULL, OPT_ENABLE_RABBIT},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_ENABLE_RABBIT:
            enable_rabbit = true;
            break;
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'v':
            log_threshold = LOG_DEBUG;
            break;
        case 'V':
            printf("hopper %s (librdkafka %s, %s)\n", HOPPER_VERSION, rd_kafka_version_str(),
                   event_get_version());
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }

    char err[1024];
    struct config *cfg;
    if (config_load(path, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    if (enable_rabbit)
        cfg->rabbit_enabled = true;
    if (test_only) {
        /* Contracts name subjects: a registry that answers must have them. */
        if (*cfg->registry_url && contracts_preflight(cfg, NULL, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            config_free(cfg);
            return EXIT_CONFIG;
        }
        printf("%s: configuration is valid\n", path);
        config_free(cfg);
        return EXIT_OK;
    }

    signal(SIGPIPE, SIG_IGN);
    struct app app = {.base = event_base_new()};
    if (!app.base) {
        fprintf(stderr, "hopper: cannot create event loop\n");
        config_free(cfg);
        return EXIT_CONFIG;
    }
    /* The server owns cfg from here, whether it starts or not. */
    app.srv = server_new(app.base, cfg, err, sizeof err);
    if (!app.srv) {
        log_error("%s", err);
        event_base_free(app.base);
        return EXIT_CONFIG;
    }
    const char *hooks = getenv("HOPPER_TEST_HOOKS");
    if (add_events(&app, hooks && !strcmp(hooks, "1"))) {
        log_error("cannot set up signal handling: libevent could not make or add a signal event "
                  "or the drain timer");
        free_events(&app);
        server_free(app.srv);
        event_base_free(app.base);
        return EXIT_CONFIG;
    }

    log_info("hopper %s listening on %s:%u (AMQP 0-9-1), kafka %s", HOPPER_VERSION,
             cfg->listen_address, cfg->listen_port, cfg->bootstrap_servers);
    event_base_dispatch(app.base);

    if (app.exit_code == EXIT_FORCED) {
        /* Exit at once: no drain, no waiting on Kafka. */
        return EXIT_FORCED;
    }
    free_events(&app);
    server_free(app.srv);
    event_base_free(app.base);
    return app.exit_code;
}
