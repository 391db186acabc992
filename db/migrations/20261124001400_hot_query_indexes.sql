-- Why: an index for every hot query the policies do not already cover: the retention cleanup scans results by
-- age across all users, and the sweep for stuck jobs looks only at in-flight (pending/processing) results.
create index if not exists segmentation_results_created_at_idx on public.segmentation_results (created_at);
create index if not exists segmentation_results_in_flight_updated_at_idx
  on public.segmentation_results (updated_at) where status in ('pending', 'processing');
