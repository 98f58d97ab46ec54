-- Reload URLs for 1,000 domains (the routing key is in the path).
local i = 0
request = function()
  i = i % 1000 + 1
  return wrk.format("GET", "/user/u" .. i .. "/webapps/site" .. i .. ".example/reload",
    { ["Host"] = "www.example.com" })
end
