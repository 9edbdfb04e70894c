-- wrk script: POST /images/inference for the benchmark's uploaded images, in turn.
-- Environment: BENCH_TOKEN (bearer token), BENCH_IDS (comma-separated image ids).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   token = os.getenv("BENCH_TOKEN")
   ids = {}
   for id in string.gmatch(os.getenv("BENCH_IDS"), "%d+") do
      table.insert(ids, id)
   end
   counter = 0
   responses = 0
   failures = 0
end

function request()
   counter = counter + 1
   local id = ids[(counter % #ids) + 1]
   return wrk.format("POST", "/images/inference", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
   }, '{"image_id": ' .. id .. '}')
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local failed = 0
   for _, thread in ipairs(threads) do
      failed = failed + thread:get("failures")
   end
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "seconds": %.3f, "failures": %d, "socket_errors": %d, '
      .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "mean_ms": %.3f}\n',
      summary.requests, summary.duration / 1e6, failed,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
      latency.mean / 1000))
end
