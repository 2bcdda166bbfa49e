-- Reserved: migration 0008 belongs to the search tables (issue #13, branch
-- search), written in parallel with 0009. This placeholder keeps the
-- versions gapless until that branch lands; it is replaced by it then.
SELECT 1;
