-- A content-discovery scan: well-known sensitive paths in turn, about 100
-- requests a second (far below a flood), nearly all of them 404.
local paths = {
  "/.env", "/.git/config", "/wp-login.php", "/phpmyadmin/", "/server-status",
  "/backup.zip", "/config.json", "/.aws/credentials", "/api/v1/debug",
  "/actuator/env", "/console", "/.DS_Store", "/web.config", "/db.sql",
  "/xmlrpc.php", "/.htpasswd", "/cgi-bin/test.cgi", "/solr/admin",
  "/hello",
}
local i = 0

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function delay()
  return 10
end
