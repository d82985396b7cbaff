"""surge: a self-hostable serverless GPU platform."""
