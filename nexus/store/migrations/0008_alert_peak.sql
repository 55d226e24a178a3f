-- 0008 (monitor): what an alert was at its worst, and what it said when it fired.
-- peak_value: the highest value any evaluation observed while it fired (every rule alerts on a value
-- above its threshold, so higher is worse); the resolve row's value is the calm one, not the peak.
-- fired_summary: the summary it fired with; ``summary`` is rewritten on resolve ("Error rate 4.1 %…"),
-- which alone reads as if nothing had happened.
ALTER TABLE alerts ADD COLUMN peak_value double precision;
ALTER TABLE alerts ADD COLUMN fired_summary text;
-- Alerts stored before: the best known is the last value; the first summary only where still firing.
UPDATE alerts SET peak_value = value;
UPDATE alerts SET fired_summary = summary WHERE status = 'firing';
