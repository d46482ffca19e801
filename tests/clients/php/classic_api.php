<?php
/**
 * A RECONSTRUCTION (not a copy) of the `Api` class that classic SMM panels publish on their API page as their
 * "example of PHP code", and that other panels embed to call their providers. That class is distributed as a
 * text on each panel's web page, not as a package in any registry this project's set-up can install from, so
 * its text cannot be pinned and fetched here; this file was written for the tests to behave on the wire exactly
 * as that class does, which is what a server sees of it:
 *
 * - properties $api_url and $api_key, set by the caller; no constructor;
 * - every method builds an array whose first entries are `key` and `action`, then the method's parameters
 *   (order() merges the caller's array after them), and sends it with connect();
 * - connect(): a POST whose body is `name=urlencode(value)` pairs joined with `&` (no http_build_query), the
 *   user agent `Mozilla/4.0 (compatible; MSIE 5.01; Windows NT 5.0)`, no request id, no timeout, no TLS
 *   verification, the body returned whatever the HTTP status (no CURLOPT_FAILONERROR), false when curl failed
 *   without a body;
 * - answers decoded with json_decode() to objects, except multiRefill, multiRefillStatus and cancel, which ask
 *   for associative arrays; multiStatus, multiRefill, multiRefillStatus and cancel join their ids with
 *   implode(',').
 *
 * Used by tests/clients/test_classic_php_api.py; not part of the client kit (that is clients/php/Api.php).
 */
class Api
{
    public $api_url = 'https://panel.example/api/v2';

    public $api_key = '';

    public function order($data)
    {
        $post = array_merge(['key' => $this->api_key, 'action' => 'add'], $data);
        return json_decode((string)$this->connect($post));
    }

    public function status($order_id)
    {
        return json_decode($this->connect(['key' => $this->api_key, 'action' => 'status', 'order' => $order_id]));
    }

    public function multiStatus($order_ids)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'status',
            'orders' => implode(',', (array)$order_ids),
        ]));
    }

    public function services()
    {
        return json_decode($this->connect(['key' => $this->api_key, 'action' => 'services']));
    }

    public function refill(int $orderId)
    {
        return json_decode($this->connect(['key' => $this->api_key, 'action' => 'refill', 'order' => $orderId]));
    }

    public function multiRefill(array $orderIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill',
            'orders' => implode(',', $orderIds),
        ]), true);
    }

    public function refillStatus(int $refillId)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill_status',
            'refill' => $refillId,
        ]));
    }

    public function multiRefillStatus(array $refillIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill_status',
            'refills' => implode(',', $refillIds),
        ]), true);
    }

    public function cancel(array $orderIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'cancel',
            'orders' => implode(',', $orderIds),
        ]), true);
    }

    public function balance()
    {
        return json_decode($this->connect(['key' => $this->api_key, 'action' => 'balance']));
    }

    private function connect($post)
    {
        $pairs = [];
        if (is_array($post)) {
            foreach ($post as $name => $value) {
                $pairs[] = $name . '=' . urlencode($value);
            }
        }
        $ch = curl_init($this->api_url);
        curl_setopt($ch, CURLOPT_RETURNTRANSFER, 1);
        curl_setopt($ch, CURLOPT_POST, 1);
        curl_setopt($ch, CURLOPT_HEADER, 0);
        curl_setopt($ch, CURLOPT_SSL_VERIFYPEER, 0);
        if (is_array($post)) {
            curl_setopt($ch, CURLOPT_POSTFIELDS, join('&', $pairs));
        }
        curl_setopt($ch, CURLOPT_USERAGENT, 'Mozilla/4.0 (compatible; MSIE 5.01; Windows NT 5.0)');
        $result = curl_exec($ch);
        if (curl_errno($ch) != 0 && empty($result)) {
            $result = false;
        }
        curl_close($ch);
        return $result;
    }
}
