DROP INDEX members_by_user_name;
DROP INDEX members_by_external_id;
DROP TABLE exports;
DROP TABLE legal_hold_members;
DROP TABLE legal_holds;
DROP TABLE assets;
