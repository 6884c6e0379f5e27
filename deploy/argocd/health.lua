-- Argo CD health check for mailshift.io/MailMigration (resource.customizations.health.mailshift.io_MailMigration).
-- kstatus: Stalled=True → Degraded; a status older than the spec or Reconciling=True → Progressing;
-- Ready=True → Healthy; spec.suspend (Ready=False, reason Suspended) → Suspended; otherwise
-- Progressing with the next step (e.g. waiting for approval), and how much of the copy is done.
hs = { status = "Progressing", message = "Waiting for the controller" }
if obj.status == nil then
  return hs
end
local gen = obj.metadata.generation
if obj.status.observedGeneration == nil or (gen ~= nil and obj.status.observedGeneration < gen) then
  return hs
end
local ready, reconciling, stalled
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "Reconciling" then reconciling = c end
    if c.type == "Stalled" then stalled = c end
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready ~= nil and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif obj.status.nextStep ~= nil then
  hs.message = obj.status.nextStep
elseif ready ~= nil then
  hs.message = ready.message
end
local t = obj.status.transfer
if t ~= nil and t.percent ~= nil and t.percent < 100 then
  hs.message = hs.message .. " (" .. t.percent .. "% copied)"
end
return hs
