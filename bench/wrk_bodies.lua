-- wrk script (bench/sender.py): POST each line of a bodies file exactly once, then stop.
--
--   wrk -t1 -c<connections> -d<cap>s -s bench/wrk_bodies.lua <url> -- <bodies> <out.json> <rate> <header: value>...
--
-- rate 0: closed loop, every connection sends its next body as soon as its previous one is answered.
-- rate > 0: open loop at that rate; body j is due at start + j / rate, whatever the answers do (as wrk2 does, a
-- late connection sends at once and the lateness counts: the bench measures latency from the due time).
-- Every request's send time (CLOCK_MONOTONIC, the clock of Python's time.monotonic/perf_counter on Linux) and
-- every answer's status go to out.json, written when the last answer arrived. wrk itself runs until -d or SIGINT
-- (its main thread sleeps through the duration), so bench/sender.py sends SIGINT once out.json exists.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local requests = {}
local out_path, rate
local reserved, sent, answered = 0, 0, 0
local start = nil
local send_times = {}
local statuses = {}

function init(args)
  local bodies_path = args[1]
  out_path = args[2]
  rate = tonumber(args[3])
  local headers = { ["Content-Type"] = "application/json" }
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  for line in io.lines(bodies_path) do
    requests[#requests + 1] = wrk.format("POST", nil, headers, line)
  end
end

-- Called before each request of a connection: the wait until that request's slot.
function delay()
  if reserved >= #requests then
    return 3600 * 1000 -- nothing left for this connection: it waits until the last answer stops the thread
  end
  if start == nil then
    start = now()
  end
  reserved = reserved + 1
  if rate <= 0 then
    return 0
  end
  local due = start + (reserved - 1) / rate
  local wait = (due - now()) * 1000
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end

function request()
  if sent >= reserved then
    -- wrk builds one request when the thread starts, before any connection's delay(): not a send
    return requests[1]
  end
  sent = sent + 1
  send_times[sent] = now()
  return requests[sent]
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if answered >= #requests then
    local file = io.open(out_path .. ".part", "w")
    local codes = {}
    for code, count in pairs(statuses) do
      codes[#codes + 1] = string.format('"%d": %d', code, count)
    end
    local times = {}
    for i = 1, sent do
      times[i] = string.format("%.6f", send_times[i])
    end
    file:write(string.format('{"start": %.6f, "finished": %.6f, "rate": %s, "statuses": {%s}, "sent": [%s]}',
      start, now(), rate, table.concat(codes, ", "), table.concat(times, ", ")))
    file:close()
    os.rename(out_path .. ".part", out_path) -- the sender sees a whole file, then stops wrk with SIGINT
    wrk.thread:stop()
  end
end
