-- Reserved: 0011 was set aside for the task DAGs and live streams with
-- engines (issue #13, branch dag), which landed without a migration, while
-- 0012 was being written in parallel. This placeholder keeps the versions
-- gapless; a later migration may not reuse the number.
SELECT 1;
