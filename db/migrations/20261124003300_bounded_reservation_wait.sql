-- Why: a submission serialises on its user's profile row lock (race-safe reservation); a transaction of the same
-- user left open (a debugger, a stuck client, a test holding a transaction) must not make the next submission
-- wait forever on connections without a statement_timeout: after 10 s it fails with 55P03 (lock_not_available,
-- retryable) instead. Charges and submissions hold the lock for milliseconds, so a healthy system never waits this long.
alter function internal.reserve_segmentation_credits() set lock_timeout = '10s';
comment on function internal.reserve_segmentation_credits() is
  'BEFORE INSERT on segmentation_results: records the price and refuses (PT402 insufficient_credits) when credits - reserved < price; race-safe via the profile row lock, waited for at most 10 s (then 55P03).';
