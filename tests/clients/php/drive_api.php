<?php
// Drives clients/php/Api.php against a running api: every method once, printing one JSON object with each
// answer, its HTTP status and the status its error stands for. Usage: php drive_api.php URL KEY SERVICE
require __DIR__ . '/../../../clients/php/Api.php';

[$_, $url, $key, $service] = $argv;
$api = new Api($url, $key);
$out = [];
$record = function ($name, $answer) use ($api, &$out) {
    $out[$name] = ['answer' => $answer, 'status' => $api->last_status, 'error_status' => $api->last_error_status];
    return $answer;
};

$record('services', $api->services());
$classic = $record('order', $api->order(['service' => $service, 'link' => 'https://example.com/p/php', 'quantity' => 100]));
$rid = Api::newRequestId();
$first = $record('order_rid', $api->order(['service' => $service, 'link' => 'https://example.com/p/php', 'quantity' => 100], $rid));
$record('order_rid_again', $api->order(['service' => $service, 'link' => 'https://example.com/p/php', 'quantity' => 100], $rid));
$order = $first->order;
$record('status', $api->status($order));
$record('multiStatus', $api->multiStatus([$order, 999999999]));
$record('refill', $api->refill($order));
$record('multiRefill', $api->multiRefill([$order]));
$record('refillStatus', $api->refillStatus(999999999));
$record('multiRefillStatus', $api->multiRefillStatus([999999999]));
$record('cancel', $api->cancel([$order]));
$record('balance', $api->balance());
// The classic class is configured through its properties, not a constructor: that works too.
$legacy = new Api();
$legacy->api_url = $url;
$legacy->api_key = $key;
$out['legacy_balance'] = [
    'answer' => $legacy->balance(),
    'status' => $legacy->last_status,
    'error_status' => $legacy->last_error_status,
];
echo json_encode($out), "\n";
