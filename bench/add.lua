-- wrk script: POST form-encoded API v2 `add` calls with unique request_ids.
--   BENCH_KEYS     file with one API key per line; requests rotate through them (many accounts) or use one
--   BENCH_SERVICE  the service id (a Default-type service)
-- done() prints one line `BENCH_JSON {...}` with the counts and wrk's latency distribution (microseconds).

local threads = {}
local counter = 0
local prefix = ""
local keys = {}
local service = os.getenv("BENCH_SERVICE") or "1"

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

local function random_hex(bytes)
   local f = io.open("/dev/urandom", "rb")
   local raw = f:read(bytes)
   f:close()
   return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function init(args)
   -- A random prefix per thread and run: request_ids never repeat, even across runs on one database.
   prefix = random_hex(6) .. "-" .. tostring(thread_id)
   local path = os.getenv("BENCH_KEYS")
   if path == nil then
      error("BENCH_KEYS is not set")
   end
   for line in io.lines(path) do
      if line ~= "" then
         table.insert(keys, line)
      end
   end
   if #keys == 0 then
      error("no keys in " .. path)
   end
   counter = thread_id  -- threads start at different keys
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
   counter = counter + 1
   local key = keys[(counter % #keys) + 1]
   local body = "key=" .. key .. "&action=add&service=" .. service
      .. "&link=https%3A%2F%2Fexample.test%2Fp%2F" .. counter
      .. "&quantity=100&request_id=" .. prefix .. "-" .. counter
   return wrk.format("POST", "/api/v2", headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
