<?php
/**
 * panelflow API v2 client for PHP 7.4+ (ext-curl), in the shape of the `Api` class classic panels publish:
 * code written against that class switches to panelflow by changing $api_url and $api_key.
 *
 * Like the classic class, every method returns the decoded JSON answer (objects, or arrays where the classic
 * class asks for arrays), errors included ({"error": "..."}), and false when the server cannot be reached.
 * Added: an optional request id on order() (send one per order, and the same one again when you retry it:
 * the order is then never placed twice), the HTTP status of the last answer ($api->last_status), the status
 * its error stands for ($api->last_error_status) and Api::verifyWebhook() for signed webhook deliveries.
 */
class Api
{
    /** API URL, e.g. https://panel.example/api/v2 */
    public $api_url = '';

    /** Your API key */
    public $api_key = '';

    /** Seconds to wait for an answer */
    public $timeout = 30;

    /** HTTP status of the last answer (0: none) */
    public $last_status = 0;

    /**
     * The HTTP status the last answer's error stands for (0: the last answer was no error, or none came). A
     * `classic` key answers errors with HTTP 200 and this status in the X-Error-Status header; a `strict` key
     * answers them with the status itself.
     */
    public $last_error_status = 0;

    public function __construct($api_url = null, $api_key = null)
    {
        if ($api_url !== null) {
            $this->api_url = $api_url;
        }
        if ($api_key !== null) {
            $this->api_key = $api_key;
        }
    }

    /** Add order; $request_id (1-128 printable ASCII characters) makes retries safe */
    public function order($data, $request_id = null)
    {
        if ($request_id !== null) {
            $data['request_id'] = $request_id;
        }
        return json_decode((string)$this->connect(array_merge(['action' => 'add'], $data)));
    }

    /** Get order status */
    public function status($order_id)
    {
        return json_decode((string)$this->connect(['action' => 'status', 'order' => $order_id]));
    }

    /** Get orders status (at most 100 ids per call) */
    public function multiStatus($order_ids)
    {
        return json_decode((string)$this->connect([
            'action' => 'status',
            'orders' => implode(',', (array)$order_ids),
        ]));
    }

    /** Get services */
    public function services()
    {
        return json_decode((string)$this->connect(['action' => 'services']));
    }

    /** Refill order */
    public function refill($order_id)
    {
        return json_decode((string)$this->connect(['action' => 'refill', 'order' => $order_id]));
    }

    /** Refill orders */
    public function multiRefill($order_ids)
    {
        return json_decode((string)$this->connect([
            'action' => 'refill',
            'orders' => implode(',', (array)$order_ids),
        ]), true);
    }

    /** Get refill status */
    public function refillStatus($refill_id)
    {
        return json_decode((string)$this->connect(['action' => 'refill_status', 'refill' => $refill_id]));
    }

    /** Get refill statuses */
    public function multiRefillStatus($refill_ids)
    {
        return json_decode((string)$this->connect([
            'action' => 'refill_status',
            'refills' => implode(',', (array)$refill_ids),
        ]), true);
    }

    /** Cancel orders */
    public function cancel($order_ids)
    {
        return json_decode((string)$this->connect([
            'action' => 'cancel',
            'orders' => implode(',', (array)$order_ids),
        ]), true);
    }

    /** Get balance */
    public function balance()
    {
        return json_decode((string)$this->connect(['action' => 'balance']));
    }

    /** A fresh request id for order() */
    public static function newRequestId()
    {
        return 'php-' . bin2hex(random_bytes(16));
    }

    /**
     * The event (an associative array: type, timestamp, data) of a webhook delivery whose Standard Webhooks
     * signature verifies under $secret ("whsec_..."), or null. $headers: header name => value (any case);
     * $body: the raw request body (php://input), not re-encoded JSON. Dedupe on the webhook-id header.
     */
    public static function verifyWebhook($secret, $headers, $body, $tolerance = 300)
    {
        $h = array_change_key_case($headers, CASE_LOWER);
        $id = isset($h['webhook-id']) ? $h['webhook-id'] : '';
        $ts = isset($h['webhook-timestamp']) ? $h['webhook-timestamp'] : '';
        $signatures = isset($h['webhook-signature']) ? $h['webhook-signature'] : '';
        if ($id === '' || !ctype_digit($ts) || $signatures === '' || abs(time() - (int)$ts) > $tolerance) {
            return null;
        }
        $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
        if ($key === false || $key === '') {
            return null;
        }
        $expected = 'v1,' . base64_encode(hash_hmac('sha256', $id . '.' . $ts . '.' . $body, $key, true));
        foreach (explode(' ', $signatures) as $candidate) {
            if (hash_equals($expected, $candidate)) {
                $event = json_decode($body, true);
                return is_array($event) ? $event : null;
            }
        }
        return null;
    }

    private function connect($post)
    {
        $post = array_merge(['key' => $this->api_key], $post);
        $error_status = null;
        $ch = curl_init($this->api_url);
        curl_setopt_array($ch, [
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => http_build_query($post),
            CURLOPT_TIMEOUT => $this->timeout,
            CURLOPT_USERAGENT => 'panelflow-client-php/0.1.0',
            CURLOPT_HEADERFUNCTION => function ($ch, $line) use (&$error_status) {
                if (preg_match('/^X-Error-Status:\s*(\d{3})\s*$/i', $line, $m)) {
                    $error_status = (int)$m[1];
                }
                return strlen($line);
            },
        ]);
        $result = curl_exec($ch);
        $this->last_status = (int)curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        if ($error_status !== null) {
            $this->last_error_status = $error_status;
        } else {
            $this->last_error_status = $this->last_status >= 400 ? $this->last_status : 0;
        }
        if (curl_errno($ch) != 0 && empty($result)) {
            $result = false;
        }
        curl_close($ch);
        return $result;
    }
}
