-- Requests read from a file, for bench_peers.py's HTTP runs: `BENCH_REQUESTS=FILE wrk -s bench/wrk_bodies.lua URL`.
-- Each line of FILE is one request: METHOD, a tab, the path, and for a POST a tab and its JSON body. They
-- are formatted once in init() and sent in turn, so every server gets the same requests in the same order
-- and wrk, which shares the cores with the server, does no per-request work.
local json_headers = { ["Content-Type"] = "application/json" }
local pool, next_request = {}, 0

function init(args)
  local path = os.getenv("BENCH_REQUESTS")
  for line in io.lines(path) do
    local method, target, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
    if body == "" then
      pool[#pool + 1] = wrk.format(method, target)
    else
      pool[#pool + 1] = wrk.format(method, target, json_headers, body)
    end
  end
  assert(#pool > 0, "no requests in " .. tostring(path))
end

function request()
  next_request = next_request % #pool + 1
  return pool[next_request]
end

-- done(): the JSON report line, shared with the other wrk script
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk_report.lua")
