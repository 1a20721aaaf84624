-- SPDX-License-Identifier: MIT
--
-- bench/http_pipeline.lua — wrk script for bench/run_http.sh: each connection
-- sends DEPTH requests (default 16) for the URL's path at once and reads the
-- DEPTH responses before sending the next batch (HTTP/1.1 pipelining).
--   wrk -s bench/http_pipeline.lua http://127.0.0.1:PORT/1k.bin -- 16
-- wrk counts every response, so Requests/sec is requests, not batches.

local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  local one = wrk.format(nil, nil)  -- wrk.method/path/headers of the URL
  batch = string.rep(one, depth)
end

function request()
  return batch
end
