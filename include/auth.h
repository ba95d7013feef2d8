/* auth.h - SASL mechanisms PLAIN and AMQPLAIN against the configured users.
 *
 * PLAIN's response is "authzid\0user\0password" (authzid may be empty).
 * AMQPLAIN's response is a field table without its 4-byte length prefix,
 * holding LOGIN and PASSWORD (php-amqplib and old kombu use it). */
#ifndef HOPPER_AUTH_H
#define HOPPER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>

#include "config.h"

#define AUTH_MECHANISMS "PLAIN AMQPLAIN"

enum auth_result {
    AUTH_OK,
    AUTH_BAD_MECHANISM, /* not one we offered: connection close 504? see conn.c */
    AUTH_MALFORMED,     /* response cannot be parsed */
    AUTH_REFUSED,       /* unknown user, wrong password, or loopback-only user */
};

/* Check a start-ok response. user_out (256 bytes) receives the login name
 * for logs when it could be parsed; why_out a reason for the log (never the
 * password). */
enum auth_result auth_check(const struct config *cfg, amqp_bytes_t mechanism, amqp_bytes_t response,
                            bool peer_loopback, unsigned max_depth, char *user_out,
                            const char **why_out);

#endif
