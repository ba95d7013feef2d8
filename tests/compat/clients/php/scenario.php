<?php
// The compat scenario for php-amqplib (Debian's package; AMQPLAIN is its
// default mechanism). Publishes of a step are all sent before waiting for
// their confirms. Output contract: tests/compat/README.md.

require_once '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

$spec = json_decode(file_get_contents(getenv('COMPAT_SPEC')), true);
$client = getenv('COMPAT_CLIENT');
$run = getenv('COMPAT_RUN');
$timeout = (float)(getenv('COMPAT_TIMEOUT') ?: 30);
$exchange = "compat.$client.$run";
$queue = "$exchange.q";

function step($name, $ok, $detail)
{
    echo "STEP $name " . ($ok ? 'ok' : 'FAIL') . " $detail\n";
}

function err($e)
{
    return 'error=' . json_encode(get_class($e) . ': ' . $e->getMessage());
}

try {
    $conn = new AMQPStreamConnection(getenv('COMPAT_HOST'), (int)getenv('COMPAT_PORT'), 'guest', 'guest', '/',
        false, 'AMQPLAIN', null, 'en_US', $timeout, $timeout);
} catch (Throwable $e) {
    step('connect', false, err($e));
    exit(1);
}
$version = class_exists('PhpAmqpLib\Package') ? PhpAmqpLib\Package::VERSION : '?';
step('connect', true, "mechanism=AMQPLAIN _version=$version");

$state = [];
$open = function () use (&$state, $conn) {
    $ch = $conn->channel();
    $id = $ch->getChannelId();
    $state[$id] = ['acks' => 0, 'nacks' => 0, 'returns' => []];
    $ch->set_ack_handler(function ($m) use (&$state, $id) { $state[$id]['acks']++; });
    $ch->set_nack_handler(function ($m) use (&$state, $id) { $state[$id]['nacks']++; });
    $ch->set_return_listener(function ($code, $text, $ex, $key, $msg) use (&$state, $id) {
        $state[$id]['returns'][] = [$code, $text];
    });
    $ch->confirm_select();
    return $ch;
};

try {
    $ch1 = $open();
    $ch2 = $open();
    $ch1->exchange_declare($exchange, 'topic', false, false, false);
    [, $messages,] = $ch1->queue_declare($queue, false, true, false, false);
    $ch1->queue_bind($queue, $exchange, $spec['binding']);
    $ch1->exchange_declare($spec['noroute_exchange'], 'topic', false, true, false);
    step('declare', true, "queue_messages=$messages");
} catch (Throwable $e) {
    step('declare', false, err($e));
    exit(1);
}
$id1 = $ch1->getChannelId();
$id2 = $ch2->getChannelId();

$t0 = microtime(true);
try {
    for ($i = 0; $i < $spec['count']; $i++) {
        $ch = $i % 2 == 0 ? $ch1 : $ch2;
        $ch->basic_publish(new AMQPMessage(sprintf($spec['body'], $run, $i)), $exchange, sprintf($spec['routing_key'], $i % 10));
    }
    $ch1->wait_for_pending_acks_returns($timeout);
    $ch2->wait_for_pending_acks_returns($timeout);
    $acks = $state[$id1]['acks'] + $state[$id2]['acks'];
    $nacks = $state[$id1]['nacks'] + $state[$id2]['nacks'];
    $returns = count($state[$id1]['returns']) + count($state[$id2]['returns']);
    step('publish', $acks == $spec['count'] && $nacks == 0, sprintf('acks=%d nacks=%d returns=%d _max_in_flight=%d _ms=%d',
        $acks, $nacks, $returns, $spec['count'], (microtime(true) - $t0) * 1000));
} catch (Throwable $e) {
    step('publish', false, err($e));
    exit(1);
}

try {
    $before = $state[$id1]['acks'];
    $ch1->basic_publish(new AMQPMessage('unroutable'), $spec['noroute_exchange'], $spec['noroute_key'], true);
    $ch1->wait_for_pending_acks_returns($timeout);
    $acked = $state[$id1]['acks'] == $before + 1 ? 'true' : 'false';
    $r = $state[$id1]['returns'][0] ?? null;
    step('mandatory', $acked === 'true' && $r && $r[0] == 312, sprintf('acked=%s returned=%d reply_code=%s reply_text=%s',
        $acked, count($state[$id1]['returns']), $r ? $r[0] : '-', $r ? $r[1] : '-'));
} catch (Throwable $e) {
    step('mandatory', false, err($e));
    exit(1);
}

try {
    $big = '';
    for ($i = 0; $i < 251; $i++) {
        $big .= chr($i);
    }
    $big = substr(str_repeat($big, intdiv($spec['big_size'], 251) + 1), 0, $spec['big_size']);
    $before = $state[$id1]['acks'];
    $ch1->basic_publish(new AMQPMessage($big), $exchange, $spec['big_key']);
    $ch1->wait_for_pending_acks_returns($timeout);
    $acked = $state[$id1]['acks'] == $before + 1;
    step('big', $acked, 'acked=' . ($acked ? 'true' : 'false') . ' size=' . strlen($big));
} catch (Throwable $e) {
    step('big', false, err($e));
    exit(1);
}

try {
    $p = $spec['props'];
    $msg = new AMQPMessage($spec['props_body'], [
        'content_type' => $p['content_type'],
        'content_encoding' => $p['content_encoding'],
        'application_headers' => new AMQPTable($spec['headers']),
        'delivery_mode' => $p['delivery_mode'],
        'priority' => $p['priority'],
        'correlation_id' => sprintf($p['correlation_id'], $run),
        'reply_to' => sprintf($p['reply_to'], $run),
        'expiration' => $p['expiration'],
        'message_id' => sprintf($p['message_id'], $run),
        'timestamp' => $p['timestamp'],
        'type' => $p['type'],
        'user_id' => $p['user_id'],
        'app_id' => sprintf($p['app_id'], $client),
    ]);
    $before = $state[$id1]['acks'];
    $ch1->basic_publish($msg, $exchange, $spec['props_key']);
    $ch1->wait_for_pending_acks_returns($timeout);
    $acked = $state[$id1]['acks'] == $before + 1;
    step('props', $acked, 'acked=' . ($acked ? 'true' : 'false'));
} catch (Throwable $e) {
    step('props', false, err($e));
    exit(1);
}

try {
    $ch2->close();
    $ch1->close();
    $conn->close();
    step('close', true, 'reply_code=200');
} catch (Throwable $e) {
    step('close', false, err($e));
    exit(1);
}

// ---- consume with manual acks and prefetch 100 until all 1002 came, the
// nacked one (body <run>:0) again; then, on a new connection, basic.get.
function connect_again()
{
    global $timeout;
    return new AMQPStreamConnection(getenv('COMPAT_HOST'), (int)getenv('COMPAT_PORT'), 'guest', 'guest', '/',
        false, 'AMQPLAIN', null, 'en_US', $timeout, $timeout);
}

function delivered_properties($msg)
{
    $out = [];
    foreach ($msg->get_properties() as $k => $v) {
        if ($k === 'application_headers') {
            $out['headers'] = $v->getNativeData();
        } else {
            $out[$k] = $v;
        }
    }
    return $out;
}

$t = ['deliveries' => 0, 'redelivered' => 0, 'small' => [], 'bad' => 0, 'big' => null, 'props' => null,
      'nacked' => false, 'back' => false];
$first = sprintf($spec['body'], $run, 0);
$count = function () use (&$t) {
    return count($t['small']) + ($t['big'] !== null) + ($t['props'] !== null);
};
$done = function () use (&$t, $count, $spec) {
    return $count() == $spec['count'] + 2 && $t['back'];
};
$t0 = microtime(true);
$get = 'not-run';
$error = null;
try {
    $cconn = connect_again();
    $cch = $cconn->channel();
    $cch->basic_qos(0, 100, false);
    $cch->basic_consume($queue, '', false, false, false, false, function ($msg) use (&$t, $first, $spec, $run) {
        $t['deliveries']++;
        $redelivered = (bool)$msg->isRedelivered();
        $t['redelivered'] += $redelivered ? 1 : 0;
        $key = $msg->getRoutingKey();
        $body = $msg->getBody();
        $nack = false;
        if ($key === $spec['big_key']) {
            $t['big'] = $body;
        } elseif ($key === $spec['props_key']) {
            $t['props'] = delivered_properties($msg);
        } else {
            $pos = strrpos($body, ':');
            $i = $pos === false ? '' : substr($body, $pos + 1);
            if ($pos !== false && substr($body, 0, $pos) === $run && ctype_digit($i) && (int)$i < $spec['count']) {
                $t['small'][(int)$i] = true;
            } else {
                $t['bad']++;
            }
            if ($body === $first) {
                if (!$t['nacked']) {
                    $nack = $t['nacked'] = true;
                } elseif ($redelivered) {
                    $t['back'] = true;
                }
            }
        }
        if ($nack) {
            $msg->nack(true);
        } else {
            $msg->ack();
        }
    });
    $deadline = $t0 + $timeout;
    while (!$done() && microtime(true) < $deadline) {
        try {
            $cch->wait(null, false, min(1.0, max(0.01, $deadline - microtime(true))));
        } catch (AMQPTimeoutException $e) {
        }
    }
    $ms = (microtime(true) - $t0) * 1000;
    $cconn->close();
    if ($done()) {
        if (getenv('COMPAT_TARGET') === 'hopper') {
            usleep(1000000); // a commit interval is 200 ms
        }
        $gconn = connect_again();
        $get = $gconn->channel()->basic_get($queue) === null ? 'empty' : 'message';
        $gconn->close();
    }
} catch (Throwable $e) {
    $error = $e;
    $ms = (microtime(true) - $t0) * 1000;
}
if ($t['props'] !== null) {
    echo 'DELIVERED ' . json_encode($t['props']) . "\n";
}
$bodies = count($t['small']) == $spec['count'] && $t['bad'] == 0 ? 'ok' : 'WRONG';
$big = $t['big'] === null ? 'missing' : ($t['big'] === substr(str_repeat(implode('', array_map('chr', range(0, 250))),
    intdiv($spec['big_size'], 251) + 1), 0, $spec['big_size']) ? 'ok' : 'WRONG');
$ok = $done() && $t['redelivered'] == 1 && $t['deliveries'] == $spec['count'] + 3 && $bodies === 'ok' && $big === 'ok'
    && $get === 'empty' && $error === null;
step('consume', $ok, sprintf('count=%d redelivered=%d deliveries=%d back=%s bodies=%s big=%s props=%s get=%s _ms=%d%s',
    $count(), $t['redelivered'], $t['deliveries'], $t['back'] ? 'true' : 'false', $bodies, $big,
    $t['props'] !== null ? 'yes' : 'missing', $get, $ms, $error === null ? '' : ' ' . err($error)));
exit($ok ? 0 : 1);
