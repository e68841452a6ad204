-- A consumer using the lab's API: the /api/ routes in turn, one in twenty a
-- 404, about 20 requests a second on one keep-alive connection.
-- Arguments (after `--`): the API key, then `header` or `query` for where
-- the key goes (Kong key-auth accepts both).
local paths = {
  "/api/orders", "/api/users/7", "/api/items", "/api/orders?page=2",
  "/api/users/7/orders", "/api/items?sort=name", "/api/orders/42",
  "/api/users/11", "/api/items/3", "/api/orders?status=open",
  "/api/users/7", "/api/items", "/api/orders", "/api/users/12",
  "/api/items?page=3", "/api/orders/43", "/api/users/7", "/api/items/9",
  "/api/orders?page=3", "/api/missing",
}
local key, in_query
local i = 0

function init(args)
  key, in_query = args[1], args[2] == "query"
end

function request()
  i = i % #paths + 1
  local path = paths[i]
  if in_query then
    local sep = path:find("?", 1, true) and "&" or "?"
    return wrk.format("GET", path .. sep .. "apikey=" .. key)
  end
  return wrk.format("GET", path, { ["apikey"] = key })
end

function delay()
  return 50
end
