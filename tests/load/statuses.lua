-- wrk script: POSTs one review per request and counts the answers by status code, across
-- threads, so the report can show that every answer was 200 or 429.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("EXITWISE_LOAD_BODY")
  or '{"text": "A warm, funny film with a great cast. The plot drags a little in the middle, but the ending is moving and I would watch it again."}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local thread_counts = thread:get("counts")
    for status, count in pairs(thread_counts) do
      total[status] = (total[status] or 0) + count
    end
  end
  io.write("statuses:")
  for status, count in pairs(total) do
    io.write(string.format(" %d=%d", status, count))
  end
  io.write(string.format("\nsocket errors: connect %d, read %d, write %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("latency (all answers): p50 %.1f ms, p99 %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
