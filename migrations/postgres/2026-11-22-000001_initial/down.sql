DROP TABLE replay_requests;
DROP TABLE attempts;
DROP TABLE deliveries;
DROP TABLE configs;
