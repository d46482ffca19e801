<?php
// Api::verifyWebhook on a delivery read from a JSON file {"secret", "headers", "body"}: prints the event's
// type, or "refused". Usage: php verify_webhook.php FILE
require __DIR__ . '/../../../clients/php/Api.php';

$in = json_decode(file_get_contents($argv[1]), true);
$event = Api::verifyWebhook($in['secret'], $in['headers'], $in['body']);
echo $event === null ? "refused\n" : 'verified ' . $event['type'] . "\n";
