DROP TABLE compatibility_config;
DROP TABLE subject_versions;
DROP TABLE schemas;
