-- 1,000 distinct Host values, in turn.
local i = 0
request = function()
  i = i % 1000 + 1
  return wrk.format("GET", "/", { ["Host"] = "site" .. i .. ".example" })
end
