-- Requests for bench_service.py's load runs: `wrk -s bench/wrk_requests.lua URL`.
-- Configured by environment variables, so one script serves every endpoint:
--   BENCH_REQUEST  constant | similar | recommendations
--   BENCH_TITLES   how many titles the index holds (ids b0000000 ... are drawn uniformly)
--   BENCH_HISTORY  watch-history length of a recommendations request
--   BENCH_SEED     seed of the ids drawn
local kind = os.getenv("BENCH_REQUEST") or "constant"
local titles = tonumber(os.getenv("BENCH_TITLES") or "1")
local history = tonumber(os.getenv("BENCH_HISTORY") or "5")
local json_headers = { ["Content-Type"] = "application/json" }

local function random_id()
  return string.format("b%07d", math.random(0, titles - 1))
end

local function new_request()
  if kind == "similar" then
    return wrk.format("GET", "/v1/posters/" .. random_id() .. "/similar?k=10")
  elseif kind == "recommendations" then
    local ids = {}
    for i = 1, history do ids[i] = '"' .. random_id() .. '"' end
    local body = '{"history": [' .. table.concat(ids, ", ") .. '], "k": 10}'
    return wrk.format("POST", "/v1/recommendations", json_headers, body)
  end
  return wrk.format("GET", "/constant")
end

-- Requests are drawn before the run, so that wrk, which shares the server's cores, does the same work per
-- request for every kind: formatting a five-id body per request cost it more CPU than a constant path,
-- time the server's workers lost. 65,536 of them outlast a cell at this machine's rates without a repeat.
local POOL = 65536
local pool, next_request = {}, 0

function init(args)
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1"))  -- fixed: the same ids every run, for comparable runs
  for i = 1, POOL do pool[i] = new_request() end
end

function request()
  next_request = next_request % POOL + 1
  return pool[next_request]
end

-- done(): the JSON report line, shared with the other wrk script
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_report.lua")
