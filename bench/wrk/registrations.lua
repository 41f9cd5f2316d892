-- POST /registrations with a fresh email on every request (the tag keeps runs apart,
-- the thread id threads apart); each thread stops after BENCH_MAX_REQUESTS requests.
local tag = os.getenv("BENCH_TAG") or tostring(os.time())
local max = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local threads = 0
local n = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n + 1
  if max > 0 and n > max then wrk.thread:stop() end
  return wrk.format(nil, "/registrations", nil, '{"email":"' .. tag .. '-' .. (tid or 0) .. '-' .. n .. '@bench.example","name":"Bench User","plan":"free"}')
end
