DROP TABLE topic_incarnations;
