-- wrk script (bench/rls.py): GET the URL on keep-alive connections, each request as the next user of a list of
-- access tokens (one per line in $WRK_TOKENS), with the anon key in $WRK_APIKEY; when done, the latency
-- percentiles (ms), request count and errors go to $WRK_OUT as JSON. Sequential latency: run it with -c1.
local tokens = {}
local next_token = 0
local apikey = os.getenv("WRK_APIKEY")

function init(args)
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    tokens[#tokens + 1] = line
  end
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", nil, { ["apikey"] = apikey, ["Authorization"] = "Bearer " .. tokens[next_token] })
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_OUT"), "w")
  local errors = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "mean_ms": %.3f, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
  out:close()
end
