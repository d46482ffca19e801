<?php
// Drives classic_api.php (the reconstructed classic panel class) as code written for classic panels does: every
// method once, printing one JSON object with each decoded answer. The class reports no HTTP status: what its user
// sees is the body alone. Usage: php drive_classic_api.php URL KEY SERVICE FALLBACK_ORDER
// FALLBACK_ORDER: the order the rest is run on when the key refused the order placed without a request id.
require __DIR__ . '/classic_api.php';

[$_, $url, $key, $service, $fallback] = $argv;
$api = new Api();
$api->api_url = $url;
$api->api_key = $key;
$out = [];
$out['services'] = $api->services();
$out['order'] = $api->order(['service' => $service, 'link' => 'https://example.com/p/classic', 'quantity' => 100]);
$order = isset($out['order']->order) ? $out['order']->order : (int)$fallback;
$out['status'] = $api->status($order);
$out['multiStatus'] = $api->multiStatus([$order, 999999999]);
$out['refill'] = $api->refill($order);
$out['multiRefill'] = $api->multiRefill([$order]);
$out['refillStatus'] = $api->refillStatus(999999999);
$out['multiRefillStatus'] = $api->multiRefillStatus([999999999]);
$out['cancel'] = $api->cancel([$order]);
$out['balance'] = $api->balance();
$out['used_order'] = $order;
echo json_encode($out), "\n";
