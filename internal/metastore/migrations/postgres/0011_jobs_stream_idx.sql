-- A stream's jobs, newest first (ListJobsWhere with a stream: the HLS
-- subtitles and metadata of a title or live stream, the console's
-- timeline, GET /jobs?stream=) read only that stream's rows, in order,
-- instead of walking every job by creation time.
CREATE INDEX jobs_stream_created_idx ON jobs (stream_id, created_at, id);
