/* config.h - hopper's configuration: the parsed form of hopper.yaml.
 *
 * config_load() parses a YAML file into a fresh struct config, validates it
 * and returns it whole, or fails with a message "file:line:col: key: problem"
 * and touches nothing else. Live code never sees a half-parsed config. */
#ifndef HOPPER_CONFIG_H
#define HOPPER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Where a route takes the Kafka record key from. */
enum key_source {
    KEY_ROUTING_KEY, /* "routing_key" (default) */
    KEY_HEADER,      /* "header:NAME": an application header, as text */
    KEY_MESSAGE_ID,  /* "message_id": the basic property */
    KEY_NONE,        /* "none": null key, Kafka's partitioner spreads records */
};

/* A message contract (docs/contracts.md): the schema in the registry that
 * every record a route or an exchange writes must match. */
enum contract_format { CONTRACT_ANY, CONTRACT_JSON, CONTRACT_AVRO };

struct contract_cfg {
    char *subject;               /* NULL: TopicNameStrategy, "<topic>-value" */
    enum contract_format format; /* CONTRACT_ANY: the registry's schemaType decides */
    int32_t version;             /* 0: latest, refreshed every registry.cache */
    bool confluent;              /* encode: confluent (Avro always) */
    bool dead_letter;            /* on_violation: dead_letter (default reject) */
    char *dead_letter_topic;     /* NULL: "<topic>.dlq" */
    int line, column;            /* of the contract: mapping, for messages */
};

struct route_cfg {
    char *exchange; /* exact exchange name to match; "" is the default exchange */
    char *pattern;  /* routing-key pattern, AMQP topic syntax ("*", "#") */
    char *topic;    /* Kafka topic, used as is (no prefix) */
    enum key_source key;
    char *key_header;              /* header name when key == KEY_HEADER, else NULL */
    struct contract_cfg *contract; /* NULL: none (the exchange's applies, if any) */
    int line;                      /* line in the file, for messages */
};

enum exchange_type { EXCHANGE_DIRECT, EXCHANGE_FANOUT, EXCHANGE_TOPIC, EXCHANGE_HEADERS };

/* An exchange that exists from startup, as if declared durable by a client. */
struct exchange_cfg {
    char *name;
    char *vhost; /* default "/" */
    enum exchange_type type;
    int default_route;             /* 1 on, 0 off, -1: inherit config.default_route */
    struct contract_cfg *contract; /* every record of a publish to it, unless its route has one */
};

/* A durable queue over existing Kafka topics, so AMQP workers can consume
 * what Kafka producers write. Served only with task queues on. */
struct queue_cfg {
    char *name;    /* AMQP queue name, 1..255 bytes, not "amq." */
    char *vhost;   /* default "/" */
    char **topics; /* n_topics >= 1, distinct, used as is (no prefix) */
    size_t n_topics;
    bool key_as_message_id; /* message_id: key; default (none) false */
    int line;               /* line in the file, for messages */
};

/* rabbit.upstream: a RabbitMQ broker whose messages the bridge (bridge.h)
 * moves into Kafka. Exactly one of queue (drain) and taps (tap). */
struct upstream_tap {
    char *exchange;    /* upstream exchange to bind hopper.tap.<name> to */
    char *routing_key; /* binding key, default "#" */
};

struct upstream_cfg {
    char *name;   /* [A-Za-z0-9._-]+, distinct; the tap queue is hopper.tap.<name> */
    char **nodes; /* amqp:// or amqps:// URIs, tried in order */
    size_t n_nodes;
    char *queue; /* drain this existing queue; NULL in tap mode */
    struct upstream_tap *taps;
    size_t n_taps;
    uint16_t prefetch;         /* basic.qos prefetch_count, default 1000 */
    uint16_t heartbeat;        /* seconds, default 60; 0 disables */
    uint32_t reconnect_min_ms; /* default 500 */
    uint32_t reconnect_max_ms; /* default 30000 */
    char *vhost_route;         /* hopper vhost whose routes route the deliveries, default "/" */
    char *tls_ca_file;         /* NULL: the system's CAs */
    char *tls_cert_file;       /* client certificate, NULL: none */
    char *tls_key_file;        /* with tls_cert_file */
    bool tls_verify;           /* default true: check the broker's certificate and name */
    int line;                  /* in the file, for messages */
};

struct user_cfg {
    char *name;
    char *password;
    bool loopback_only; /* default: true for "guest", false otherwise */
};

struct kv {
    char *key;
    char *value;
};

struct config {
    char *path; /* file it came from, for messages */

    /* listen: */
    char *listen_address; /* default "127.0.0.1" */
    uint16_t listen_port; /* default 5672 */

    /* limits: */
    uint32_t max_connections;      /* default 1024 */
    uint16_t channel_max;          /* default 2047; proposed in tune */
    uint32_t frame_max;            /* default 131072; proposed in tune, >= 4096 */
    uint32_t max_message_size;     /* default 8 MiB, body bytes */
    uint16_t heartbeat;            /* default 60 s; 0 disables */
    uint32_t handshake_timeout_ms; /* default 10000 */
    uint32_t max_table_depth;      /* default 16: nesting of field tables/arrays */
    uint32_t max_unconfirmed;      /* default 10000 per channel, then stop reading */
    uint64_t max_inflight_bytes;   /* default 64 MiB across all connections */
    uint32_t drain_timeout_ms;     /* default 10000: SIGTERM deadline */

    /* users: (default: one user guest/guest, loopback only) */
    struct user_cfg *users;
    size_t n_users;

    /* vhosts: (default: "/") */
    char **vhosts;
    size_t n_vhosts;

    /* kafka: */
    char *bootstrap_servers; /* default "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094" */
    char *topic_prefix;      /* default "": prepended to default-route topics */
    /* kafka.auto_create_topics: which topics a publish may make hopper
     * create (topicrule.h). true with no patterns: any; false: none; a
     * list: names matching one of the patterns ('*' matches any run of
     * characters). */
    bool auto_create_topics; /* default true: some creation allowed */
    char **create_patterns;  /* NULL unless a list was given */
    size_t n_create_patterns;
    uint32_t auto_create_max;    /* default 1000: topics one run creates for publishes */
    int32_t topic_partitions;    /* default 3 */
    int16_t replication_factor;  /* default 3 */
    int32_t min_insync_replicas; /* default 2 */
    struct kv *kafka_props;      /* kafka.properties: passed to librdkafka as is */
    size_t n_kafka_props;

    /* registry: the schema registry contracts come from (Confluent's REST
     * API; an http URL with its base path). "" unless contracts are used. */
    char *registry_url;
    char *registry_username; /* "" for none; with registry_password, HTTP basic auth */
    char *registry_password;
    uint32_t registry_timeout_ms; /* default 5000: one request to the registry */
    uint32_t registry_cache_ms;   /* default 30000: a `latest` schema is asked again after */
    uint32_t registry_wait_ms;    /* default 5000: a publish waits this long for its schema */

    /* rabbit: the RabbitMQ side beyond publishing (task queues). Off unless
     * rabbit.enabled or hopper --enable-rabbit (the flag wins). */
    bool rabbit_enabled;          /* default false */
    char *group_prefix;           /* default "hopper.": consumer group <prefix><vhost>.<queue> */
    uint32_t max_unacked;         /* default 10000 records fetched and not acked, per queue */
    uint64_t max_unacked_bytes;   /* default 64 MiB of those records' bodies, per queue */
    uint64_t max_transient_bytes; /* default 256 MiB held by every transient queue together */
    uint32_t commit_interval_ms;  /* default 200: acks become a commit at most this late */
    uint32_t session_timeout_ms;  /* default 10000: a crashed instance's partitions move after it */
    uint32_t idle_leave_ms; /* default 3000: a queue without consumers here leaves its group */
    char *instance_id;      /* default "": static group membership when set */
    char *topology_topic;   /* default "_hopper_topology": the durable topology (topostore.h) */
    uint32_t topology_load_timeout_ms; /* default 30000: connections wait this long for it */
    struct upstream_cfg *upstreams;    /* rabbit.upstream: the bridge, default none */
    size_t n_upstreams;

    /* routing */
    bool default_route; /* default true */
    struct exchange_cfg *exchanges;
    size_t n_exchanges;
    struct route_cfg *routes;
    size_t n_routes;

    /* queues: (default: none) */
    struct queue_cfg *queues;
    size_t n_queues;
};

/* Parse and validate `path`. On success *out owns a new config (free it
 * with config_free) and 0 is returned. On failure -1 is returned and err
 * holds one line "path:line:col: key: problem". */
int config_load(const char *path, struct config **out, char *err, size_t errlen) MUST_CHECK;

/* Same, from memory; `name` stands for the file name in messages. */
int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       char *err, size_t errlen) MUST_CHECK;

/* A config holding every default, as if the file were empty. */
struct config *config_default(void);

void config_free(struct config *cfg);

const struct user_cfg *config_find_user(const struct config *cfg, const char *name);
bool config_has_vhost(const struct config *cfg, const char *vhost);

/* The tap queue of an upstream: "hopper.tap.<name>" into out. */
void config_tap_queue(const struct upstream_cfg *u, char *out, size_t size);

#endif
