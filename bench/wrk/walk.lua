-- GET /products/:id walking the ids 1..BENCH_IDS, one step per request.
local ids = tonumber(os.getenv("BENCH_IDS") or "1000")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/products/" .. ((n % ids) + 1))
end
