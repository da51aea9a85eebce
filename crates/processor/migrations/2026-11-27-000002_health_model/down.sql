DROP TABLE rolling_metrics;
DROP TABLE daily_metrics;
DROP TABLE day_chunks;
DROP TABLE user_profiles;
