DROP TABLE erasure_receipts;
