DROP TABLE sync_status;
DROP TABLE partition_watermarks;
