-- Every request with a random X-Forwarded-For in 10/8: a million distinct
-- client IPs behind a trusted proxy, for the memory benchmark.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

request = function()
  local xff = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format(nil, nil, { ["X-Forwarded-For"] = xff })
end
