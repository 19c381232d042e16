ALTER TABLE exports DROP COLUMN format;
