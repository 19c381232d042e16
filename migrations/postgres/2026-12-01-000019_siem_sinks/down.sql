DROP TABLE siem_sinks;
