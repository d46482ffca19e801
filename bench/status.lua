-- wrk script: POST form-encoded API v2 `status` calls, each asking for 100 orders of one account.
--   BENCH_STATUS   file with one line per call: `<api key> <id>,<id>,…` (the ids of that key's account);
--                  requests rotate through the lines
-- done() prints one line `BENCH_JSON {...}` with the counts and wrk's latency distribution (microseconds).

local threads = {}
local counter = 0
local bodies = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   local path = os.getenv("BENCH_STATUS")
   if path == nil then
      error("BENCH_STATUS is not set")
   end
   for line in io.lines(path) do
      local key, ids = line:match("^(%S+) (%S+)$")
      if key ~= nil then
         table.insert(bodies, "key=" .. key .. "&action=status&orders=" .. ids:gsub(",", "%%2C"))
      end
   end
   if #bodies == 0 then
      error("no lines in " .. path)
   end
   counter = thread_id * 7  -- threads start at different accounts
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
   counter = counter + 1
   return wrk.format("POST", "/api/v2", headers, bodies[(counter % #bodies) + 1])
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
