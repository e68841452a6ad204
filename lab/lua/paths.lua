-- Paths in turn on each keep-alive connection, with an optional header,
-- one request every DELAY ms per connection.
-- Arguments (after `--`): DELAY, HEADER ("Name: value", or "" for none),
-- then the paths.
local paths, headers, pause = {}, {}, 0
local i = 0

function init(args)
  pause = tonumber(args[1])
  local name, value = args[2]:match("^([^:]+):%s*(.*)$")
  if name then headers[name] = value end
  for j = 3, #args do paths[#paths + 1] = args[j] end
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end

function delay()
  return pause
end
