-- wrk script: POST /execute with a JSON body that names the upstream URL.
--
-- Usage: wrk [options] http://127.0.0.1:<faultguard-port>/execute \
--            -s bench/execute.lua -- <upstream-url> [key]
--
-- bench/run.py passes the upstream URL, e.g. http://127.0.0.1:41234/data, and
-- the key defaults to "bench". wrk builds the request once per thread after
-- init() returns, because this script defines no request() function, so the
-- script adds no Lua work per request.

function init(args)
   local url = args[1]
   local key = args[2] or "bench"

   if url == nil or url == "" then
      error("missing upstream URL: pass it after --, e.g. -- http://127.0.0.1:8081/data")
   end

   -- The body is built by string formatting, so a quote, a backslash or a
   -- control character would make it invalid JSON. Reject them here.
   for _, value in ipairs({url, key}) do
      if value:find('[%c"\\]') then
         error("invalid argument " .. value .. ": quotes, backslashes and control characters are not supported")
      end
   end

   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = string.format('{"key":"%s","url":"%s"}', key, url)
end
