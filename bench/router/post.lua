-- wrk script: POST the JSON body in $BENCH_BODY_FILE to the URL's path, print one JSON line of results.
-- Latencies are wrk's own (HdrHistogram-like, microseconds, request sent -> whole response read).
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
-- Every contender gets the same key (only flotilla-keyed checks it), so the requests are byte-identical.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
